"""What a longer training run buys: reply quality of the trained reply model against
training minutes, LoRA against full fine-tuning, so that an admin can choose a budget.

For one transcript set of ../shared/datasets (default: the airline set, the smallest),
in a scratch home: import it (the importer's deterministic train/val/test split), build
the index (`chatbot index`), then for every (mode, minutes) asked for run `chatbot train
--max-minutes M --lora|--full --no-promote` (retrieve-and-refine examples, the default
settings otherwise) and score the version with `chatbot eval replies --variants
trained --model-version NAME` on every held-out turn, the untrained base model once
beside them. Each run is a process of its own; figures (ROUGE-L and embedding
similarity of what was sent, with 95% bootstrap intervals, validation loss, training
seconds, steps, peak memory) are printed and saved to
benchmarks/results/training_minutes.json after every run, so an interrupted benchmark
keeps what it measured.

    .venv/bin/python benchmarks/bench_training_minutes.py                           # lora 5, 15, 45; full 5, 15
    .venv/bin/python benchmarks/bench_training_minutes.py --runs lora:5,full:5      # a shorter comparison
    .venv/bin/python benchmarks/bench_training_minutes.py --data ../shared/datasets/transcripts/stc3_helpdesk_en.train.jsonl

Where a CUDA GPU is present the same commands train on it (nothing here depends on one).
"""

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

DATASETS = REPO.parent / "shared" / "datasets" / "transcripts"
DEFAULT_DATA = DATASETS / "twacs_airline.train.jsonl"
RESULTS = REPO / "benchmarks" / "results" / "training_minutes.json"
CHATBOT = str(Path(sys.executable).with_name("chatbot"))


def parse_runs(text: str) -> list[tuple[str, float]]:
    runs = []
    for item in text.split(","):
        mode, _, minutes = item.strip().partition(":")
        if mode not in ("lora", "full") or not minutes:
            raise SystemExit(f"--runs: expected mode:minutes with mode lora or full, got {item!r}")
        runs.append((mode, float(minutes)))
    return runs


def chatbot(env: dict[str, str], *args: str, timeout: float | None = None) -> dict:
    """Run one chatbot command with --json; its parsed output."""
    done = subprocess.run(
        [CHATBOT, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(
            f"chatbot {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout)


def figure(variant: dict, part: str, metric: str) -> dict:
    value = variant[part][metric]
    return {k: round(value[k], 4) for k in ("value", "low", "high")}


def quality(report: dict, name: str) -> dict:
    v = report["variants"][name]
    return {
        "turns": v["n"],
        "answered_rouge_l": figure(v, "answered", "rouge_l"),
        "answered_embedding_similarity": figure(v, "answered", "embedding_similarity"),
        "coverage": {k: round(v["coverage"][k], 4) for k in ("value", "low", "high")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--runs",
        default="lora:5,lora:15,lora:45,full:5,full:15",
        help="Comma-separated mode:minutes (mode lora or full).",
    )
    parser.add_argument("--home", type=Path, help="Scratch home (default: a temporary directory).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--model-cache",
        type=Path,
        help="Where the converted reply model is kept (default: the home's).",
    )
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found (the shared datasets live in ../shared/datasets)")
    runs = parse_runs(args.runs)
    home = args.home or Path(tempfile.mkdtemp(prefix="chatbot-minutes-"))
    env = {**os.environ, "CHATBOT_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    if args.model_cache:
        env["CHATBOT_MODEL_CACHE"] = str(args.model_cache)
    results: dict = {
        "what": "reply quality against training minutes, LoRA and full fine-tuning (bench_training_minutes.py)",
        "data": str(args.data.name),
        "home": str(home),
        "runs": [],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "metrics": "what the customer was sent on every held-out turn of the set: ROUGE-L and embedding similarity "
        "of the answered turns, 95% bootstrap intervals (resampling conversations)",
    }
    started = time.monotonic()
    print(f"importing {args.data.name} into {home}", flush=True)
    for step in (
        ["db", "upgrade"],
        ["models", "prepare"],
    ):  # the store's schema; the reply model converted once
        done = subprocess.run([CHATBOT, *step], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"chatbot {' '.join(step)} failed:\n{done.stderr[-2000:]}")
    results["import"] = chatbot(env, "import", str(args.data))
    results["index"] = {
        k: v for k, v in chatbot(env, "index").items() if k in ("version", "pair_count", "fusion")
    }
    eval_args = ["eval", "replies", "--train", str(args.data), "--no-record"]
    base = chatbot(env, *eval_args, "--variants", "retrieval,base")
    results["retrieval"] = quality(base, "retrieval")
    results["base"] = quality(base, "base")
    print(f"base model: ROUGE-L {results['base']['answered_rouge_l']}", flush=True)
    save_results(args.out, results)
    for mode, minutes in runs:
        print(f"training {mode} for {minutes:g} minutes", flush=True)
        t0 = time.monotonic()
        trained = chatbot(
            env,
            "train",
            f"--{mode}",
            "--max-minutes",
            f"{minutes:g}",
            "--no-promote",
            "--no-ranker",
        )
        wall = time.monotonic() - t0
        metrics = trained.get("metrics", {})
        name = trained["version"]
        report = chatbot(env, *eval_args, "--variants", "trained", "--model-version", name)
        row = {
            "mode": mode,
            "minutes": minutes,
            "version": name,
            "wall_seconds": round(wall, 1),
            "val_loss_before": metrics.get("val_loss_before"),
            "val_loss": metrics.get("val_loss"),
            "steps": metrics.get("steps"),
            "train_tokens": metrics.get("train_tokens"),
            "peak_memory_mb": metrics.get("peak_memory_mb"),
            "device": metrics.get("device"),
            **quality(report, "trained"),
        }
        results["runs"].append(row)
        results["seconds"] = round(time.monotonic() - started, 1)
        save_results(args.out, results)
        print(
            f"  {mode} {minutes:g} min: val loss {row['val_loss']}, ROUGE-L {row['answered_rouge_l']}, "
            f"emb. sim. {row['answered_embedding_similarity']}",
            flush=True,
        )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
