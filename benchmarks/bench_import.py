"""Import every transcript file of ../shared/datasets/transcripts into a fresh store
and print conversations/s and pairs/s (target: all ~7,500 conversations in under a
minute on 2 CPU cores). Saves the figures to benchmarks/results/bench_import.json.

    .venv/bin/python benchmarks/bench_import.py [--database-url URL]

Default store: a fresh SQLite file in a temporary directory."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402


def main() -> int:
    from chatbot.ingest.importer import import_paths
    from chatbot.store.database import Database, redact_url
    from chatbot.store.migrations import upgrade

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="an empty, migratable database (default: fresh SQLite)"
    )
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = parser.parse_args()
    files = sorted((args.datasets / "transcripts").glob("*.jsonl"))
    if not files:
        print(
            f"skipped: no transcript files under {args.datasets / 'transcripts'}", file=sys.stderr
        )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        database = Database(url)
        started = time.perf_counter()
        summary = import_paths(database, files)
        seconds = time.perf_counter() - started
        database.dispose()
    result = {
        "benchmark": "bench_import",
        "database": redact_url(url).split(":")[0],
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "conversations": summary.conversations,
        "messages": summary.messages,
        "pairs": summary.pairs,
        "seconds": round(seconds, 2),
        "conversations_per_s": round(summary.conversations / seconds, 1),
        "messages_per_s": round(summary.messages / seconds, 1),
        "pairs_per_s": round(summary.pairs / seconds, 1),
        "per_file_seconds": {Path(f.path).name: round(f.seconds, 2) for f in summary.files},
        "ok": summary.ok,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    print(
        f"{result['conversations']:,} conversations, {result['messages']:,} messages, {result['pairs']:,} pairs "
        f"from {len(files)} files in {seconds:.1f} s: {result['conversations_per_s']:,} conversations/s, "
        f"{result['pairs_per_s']:,} pairs/s ({result['database']})"
    )
    out = REPO / "benchmarks" / "results" / "bench_import.json"
    save_results(out, result)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
