"""Run every benchmark of the project and summarise them in one Markdown page.

Each `benchmarks/bench_*.py` runs in its own process (so its peak memory is its own),
with a time limit; whatever JSON it writes under benchmarks/results/ is collected.
The reply evaluation (`chatbot eval replies` on the helpdesk and Twitter sets, every
variant) runs as one more benchmark. Figures land in benchmarks/results/*.json and
the summary in benchmarks/results/SUMMARY.md (and run_all.json).

    .venv/bin/python benchmarks/run_all.py            # everything, full sizes (hours on 2 CPU cores)
    .venv/bin/python benchmarks/run_all.py --quick    # small sizes: a smoke run of every benchmark
    .venv/bin/python benchmarks/run_all.py --only retrieval,eval_replies

A benchmark that needs what is absent (the shared datasets, a prepared reply model)
reports itself skipped or failed; the others still run. Exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import runpy
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
RESULTS = BENCH_DIR / "results"
DATASETS = REPO.parent / "shared" / "datasets"
PEAK_ENV = "CHATBOT_BENCH_PEAK_FILE"

# Smaller sizes for --quick, for the benchmarks whose options are known; any other
# benchmark gets --quick when its --help mentions it, and its defaults otherwise.
QUICK_ARGS = {
    "bench_retrieval": ["--sizes", "10000", "--queries", "50", "--weights", "0.0", "0.2"],
    "bench_switch_point": [
        "--sizes",
        "5000",
        "10000",
        "--queries",
        "100",
        "--base-texts",
        "2000",
        "--out",
        str(RESULTS / "retrieval_switch_quick.json"),
    ],
    "bench_dialogue": ["--latency", "2", "--quality", "4", "--quality-int8", "2"],
}
# (name, train files, --limit of a full run (None: every held-out turn), --limit of a
# quick run); the test turns are a held-out 10% of each set's conversations (the
# importer's deterministic split).
EVAL_SETS = [
    ("helpdesk", ["transcripts/stc3_helpdesk_en.train.jsonl"], None, 3),
    ("twitter", ["transcripts/ibm_twitter_care.dev.jsonl"], None, 3),
]


def _child(script: str, args: list[str]) -> None:
    """Run one benchmark script in this process and record its peak RSS."""
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        Path(os.environ[PEAK_ENV]).write_text(str(peak_kb))


def _help_text(script: Path) -> str:
    try:
        return subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        ).stdout
    except (subprocess.TimeoutExpired, OSError):
        return ""


def _result_files() -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in RESULTS.rglob("*.json")} if RESULTS.is_dir() else {}


def run_one(name: str, argv: list[str], timeout: float, log_dir: Path) -> dict:
    """Run `argv` (a benchmark script and its arguments, or a module) with a time limit."""
    before = _result_files()
    peak_file = log_dir / f"{name}.peak"
    peak_file.unlink(missing_ok=True)
    env = {**os.environ, PEAK_ENV: str(peak_file), "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", *argv]
    print(f"[run_all] {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    log_path = log_dir / f"{name}.log"
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            )
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f}s"
    seconds = time.perf_counter() - started
    tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
    if status == "ok" and any(line.lower().startswith("skipped") for line in tail):
        status = "skipped"
    after = _result_files()
    written = sorted(str(p.relative_to(RESULTS)) for p, m in after.items() if before.get(p) != m)
    peak = int(peak_file.read_text()) / 1024 if peak_file.is_file() else None
    print(f"[run_all] {name}: {status} in {seconds:.0f}s", file=sys.stderr, flush=True)
    return {
        "name": name,
        "command": " ".join(argv),
        "status": status,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak, 1) if peak else None,
        "results": written,
        "log_tail": tail,
    }


def benchmarks(quick: bool, only: set[str] | None) -> list[tuple[str, list[str]]]:
    plan = []
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        name = script.stem
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        args: list[str] = []
        if quick:
            args = QUICK_ARGS.get(name) or (["--quick"] if "--quick" in _help_text(script) else [])
        plan.append((name, [str(script.relative_to(REPO)), *args]))
    if not only or "eval_replies" in only:
        for set_name, files, full, small in EVAL_SETS:
            paths = [str(DATASETS / f) for f in files]
            if not all(Path(p).is_file() for p in paths):
                continue
            out = RESULTS / f"eval_replies_{set_name}{'_quick' if quick else ''}"
            turns = small if quick else full
            argv = [
                "-m",
                "chatbot",
                "eval",
                "replies",
                *[x for p in paths for x in ("--train", p)],
                *(["--limit", str(turns)] if turns else []),
                "--no-record",
                "--out",
                str(out),
            ]
            if quick:
                argv += ["--variants", "retrieval,base,refined"]
            plan.append((f"eval_replies_{set_name}", argv))
    return plan


def strip_turn_texts(report_path: Path) -> None:
    """Keep the figures of every turn but not its text: the datasets' text stays out of
    the repository (their README forbids copying them in)."""
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return
    for turn in report.get("turns", []):
        for key in ("message", "reference"):
            if key in turn:
                turn[f"{key}_chars"] = len(turn.pop(key) or "")
        for variant in turn.get("variants", {}).values():
            for key in ("text", "shown_text", "unsent"):
                if key in variant:
                    variant[f"{key}_chars"] = len(variant.pop(key) or "")
    tmp = report_path.with_name(f".{report_path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, report_path)


def _numbers(
    value, prefix: str = "", depth: int = 0, out: list | None = None
) -> list[tuple[str, float]]:
    """Numeric leaves of a JSON value (a few levels deep), for the generic summary."""
    out = [] if out is None else out
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.append((prefix, value))
    elif isinstance(value, dict) and depth < 4:
        for k, v in value.items():
            if k in ("machine", "settings", "meta", "turns", "history", "log_tail"):
                continue
            _numbers(v, f"{prefix}.{k}" if prefix else str(k), depth + 1, out)
    return out


def _eval_table(report: dict) -> list[str]:
    from chatbot.evaluation.replies import ReplyEvaluation
    from chatbot.evaluation.report import markdown_table

    fields = {
        k: report[k]
        for k in ("meta", "data", "variants", "skipped", "turns", "recorded_version", "notes")
    }
    if "comparisons" not in report:  # written before coverage and intervals were reported
        return ["(made by the earlier scorer, without coverage or intervals: see its report.md)"]
    fields["comparisons"] = report["comparisons"]
    return markdown_table(ReplyEvaluation(**fields)).splitlines()


def _switch_table(data: dict) -> list[str]:
    """The exact-vs-HNSW switch-point sweep (bench_switch_point) as a table and its decision."""
    lines = [
        "| pairs | exact p50 / p95 (ms) | exact, 1 FAISS thread | HNSW p50 / p95 (ms) | HNSW build (s) | recall@10 |",
        "|---|---|---|---|---|---|",
    ]
    for size, e in sorted(data["sizes"].items(), key=lambda kv: int(kv[0])):
        x, x1, h = e["exact"]["search"], e["exact_1_thread"]["search"], e["hnsw"]["search"]
        lines.append(
            f"| {int(size):,} | {x['p50_ms']:.2f} / {x['p95_ms']:.2f} | {x1['p50_ms']:.2f} / {x1['p95_ms']:.2f} | "
            f"{h['p50_ms']:.2f} / {h['p95_ms']:.2f} | {e['hnsw']['build_seconds']:.1f} | "
            f"{e['hnsw']['recall_at_10_vs_exact']:.4f} |"
        )
    emb = data["query_embedding"]
    return lines + [
        "",
        f"Query embedding (MiniLM, one query): p50 {emb['p50_ms']} ms, p95 {emb['p95_ms']} ms. "
        f"Rule: {data['rule']['text']}. Decision: {data['decision']['note']} "
        f"(with one FAISS thread: {data['decision_exact_1_thread']['note']}).",
        "",
    ]


def summary_markdown(
    runs: list[dict], quick: bool, started_at: str, only: str | None = None
) -> str:
    lines = [
        "# Benchmark summary",
        "",
        f"Run at {started_at} with `benchmarks/run_all.py{' --quick' if quick else ''}{f' --only {only}' if only else ''}` on {os.cpu_count()} CPU cores "
        f"({platform.platform()}, Python {platform.python_version()}). Figures from a shared or busy machine are slower "
        "than on an idle one; each benchmark's JSON holds its machine and load.",
        "",
        "| benchmark | status | seconds | peak RSS (MB) | results |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        peak = f"{run['peak_rss_mb']:.0f}" if run["peak_rss_mb"] else "–"
        lines.append(
            f"| {run['name']} | {run['status']} | {run['seconds']:.0f} | {peak} | "
            f"{', '.join(run['results']) or '–'} |"
        )
    for run in runs:
        lines += ["", f"## {run['name']}", "", f"`{run['command']}`", ""]
        shown = False
        for rel in run["results"]:
            try:
                data = json.loads((RESULTS / rel).read_text())
            except (OSError, ValueError):
                continue
            if rel.endswith("report.json") and "variants" in data:
                lines += _eval_table(data) + [""]
                shown = True
                continue
            if rel.endswith("meta.json"):
                continue
            if rel.startswith("retrieval_switch") and "sizes" in data:
                lines += [f"`{rel}`:", ""] + _switch_table(data)
                shown = True
                continue
            numbers = _numbers(data)[:25]
            if numbers:
                lines += (
                    [f"`{rel}`:", ""]
                    + [
                        f"- {k}: {v:,.4g}" if isinstance(v, float) else f"- {k}: {v:,}"
                        for k, v in numbers
                    ]
                    + [""]
                )
                shown = True
        if not shown:
            lines += ["```", *run["log_tail"][-8:], "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        argv = sys.argv[2:]
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            try:
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            finally:
                Path(os.environ[PEAK_ENV]).write_text(
                    str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
                )
        else:
            _child(argv[0], argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Small sizes: every benchmark in a few minutes."
    )
    parser.add_argument(
        "--only", help="Comma-separated benchmark names (e.g. retrieval,eval_replies)."
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="Seconds per benchmark (default 900 with --quick, 7200 otherwise).",
    )
    parser.add_argument("--list", action="store_true", help="Print the plan and exit.")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    plan = benchmarks(args.quick, only)
    if args.list:
        for name, argv in plan:
            print(f"{name}: {' '.join(argv)}")
        return 0
    if not plan:
        print("no benchmark matches", file=sys.stderr)
        return 1
    timeout = args.timeout or (900 if args.quick else 7200)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs = [run_one(name, argv, timeout, log_dir) for name, argv in plan]
    for report in RESULTS.glob("eval_replies_*/report.json"):
        strip_turn_texts(report)
    for run in runs:
        (log_dir / f"{run['name']}.peak").unlink(missing_ok=True)
    record = {
        "started_at": started_at,
        "quick": args.quick,
        "only": args.only,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "runs": runs,
    }
    for name, text in (
        ("run_all.json", json.dumps(record, indent=2) + "\n"),
        ("SUMMARY.md", summary_markdown(runs, args.quick, started_at, args.only)),
    ):
        tmp = RESULTS / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, RESULTS / name)
    print(f"summary: {RESULTS / 'SUMMARY.md'}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
