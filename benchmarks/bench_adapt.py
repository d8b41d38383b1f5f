"""`chatbot index --adapt` on real data: import a transcript file into a fresh data
directory and run the command line (db upgrade, import, index --adapt --json) with
the real MiniLM; records base vs adapted figures, the gain, whether the adapted
embedder was kept, and the wall time. Saves benchmarks/results/retrieval_adapt.json.

    .venv/bin/python benchmarks/bench_adapt.py [--sets helpdesk demo] [--threads 1] [--quick]

Sets: helpdesk = ../shared/datasets/transcripts/stc3_helpdesk_en.train.jsonl (skipped
when absent), demo = data/demo_shop.jsonl. The adapt settings are the defaults unless
CHATBOT_RETRIEVAL__ADAPT_* variables say otherwise (--quick: 10 steps, 1 minute)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402

SETS = {
    "helpdesk": REPO.parent
    / "shared"
    / "datasets"
    / "transcripts"
    / "stc3_helpdesk_en.train.jsonl",
    "demo": REPO / "data" / "demo_shop.jsonl",
}


def _shown(path: Path) -> str:
    if path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    return f"../{path.relative_to(REPO.parent)}" if path.is_relative_to(REPO.parent) else str(path)


def _chatbot(env: dict, *args: str) -> tuple[dict | None, float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "chatbot", *args], env=env, capture_output=True, text=True, cwd=REPO
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return (
            None,
            seconds,
            (done.stderr or done.stdout).strip().splitlines()[-1]
            if (done.stderr or done.stdout)
            else "",
        )
    return (json.loads(done.stdout) if "--json" in args else None), seconds, ""


def run_set(name: str, path: Path, threads: int, quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-adapt-{name}-") as home:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CHATBOT_DATABASE_URL", "CHATBOT_CONFIG", "CHATBOT_HOME")
        }
        env.update(
            {"CHATBOT_HOME": home, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        )
        if quick:
            env.setdefault("CHATBOT_RETRIEVAL__ADAPT_MAX_STEPS", "10")
            env.setdefault("CHATBOT_RETRIEVAL__ADAPT_MAX_MINUTES", "1")
        _, _, error = _chatbot(env, "db", "upgrade")
        if error:
            return {"set": name, "error": f"db upgrade: {error}"}
        imported, import_seconds, error = _chatbot(env, "import", "--json", str(path))
        if error:
            return {"set": name, "error": f"import: {error}"}
        load_before = os.getloadavg()
        report, seconds, error = _chatbot(env, "index", "--adapt", "--json")
        result = {
            "set": name,
            "file": _shown(path),
            "pairs_imported": imported["pairs"],
            "import_seconds": round(import_seconds, 1),
            "command": "chatbot index --adapt --json",
            "wall_seconds": round(seconds, 1),
            "load_average": {"before": load_before, "after": os.getloadavg()},
        }
        if error:
            result["error"] = error
            return result
        result.update(
            {
                "kept": report["kept"],
                "metric": report["metric"],
                "base": report["base"],
                "adapted": report["adapted"],
                "gain": report["gain"],
                "gain_stderr": report["gain_stderr"],
                "min_gain": report["min_gain"],
                "counts": report["counts"],
                "training": report["training"],
                "adapt_seconds": report["seconds"],
                "reason": report["reason"],
                "index": report["index"],
            }
        )
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["helpdesk", "demo"])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the chatbot processes"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short adaptation (10 steps): a smoke run"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "retrieval_adapt.json"
    )
    args = parser.parse_args()
    from chatbot.retrieval.settings import RetrievalSettings

    defaults = {k: v for k, v in RetrievalSettings().model_dump().items() if k.startswith("adapt_")}
    results = {
        "benchmark": "bench_adapt",
        "judge": "reply_similarity = cosine, by the base MiniLM, between the top retrieved reply and the validation "
        "pair's real reply (mean over validation pairs); exact_reply_at_k = a retrieved reply equals it, "
        "over the validation pairs whose reply occurs among the train replies",
        "settings": {
            **defaults,
            **{k: v for k, v in os.environ.items() if k.startswith("CHATBOT_RETRIEVAL__ADAPT")},
        },
        "quick": args.quick,
        "threads": args.threads,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "sets": [],
    }
    for name in args.sets:
        path = SETS[name]
        if not path.is_file():
            print(f"{name}: skipped, {path} is absent", file=sys.stderr)
            results["sets"].append({"set": name, "skipped": f"{path} is absent"})
            continue
        result = run_set(name, path, args.threads, args.quick)
        results["sets"].append(result)
        if "error" in result:
            print(f"{name}: failed: {result['error']}", file=sys.stderr)
            continue
        print(
            f"{name}: {result['counts']['train']} train / {result['counts']['val_measured']} val pairs; "
            f"reply similarity base {result['base']['reply_similarity']:.4f} -> adapted "
            f"{result['adapted']['reply_similarity']:.4f} (gain {result['gain']:+.4f} ± {result['gain_stderr']:.4f}), "
            f"kept {result['kept']}; {result['training']['steps']} steps in {result['training']['seconds']:.0f}s, "
            f"wall {result['wall_seconds']:.0f}s"
        )
    save_results(args.out, results)
    print(f"saved {args.out}")
    return 1 if any("error" in s for s in results["sets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
