"""Training benchmark: training tokens/s and peak memory of LoRA and of full
fine-tuning of the real SmolLM2-135M-Instruct (each in its own process, so peaks are
its own), and the validation loss reached on the STC-3 helpdesk transcripts of
../shared/datasets after a fixed time budget (LoRA, the default settings otherwise).

The helpdesk pairs are built here (one pair per agent turn answering a customer turn;
split 85/15 by conversation; `meta.quality.A` as the pair's quality) into a scratch
SQLite store, and trained without retrieved context (no index is built). Figures are
printed and saved to benchmarks/results/training.json.

    .venv/bin/python benchmarks/bench_training.py --home /tmp/chome          # ~25 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_training.py --home /tmp/chome --quick  # ~6 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HELPDESK = REPO.parent / "shared" / "datasets" / "transcripts" / "stc3_helpdesk_en.train.jsonl"
RESULTS = REPO / "benchmarks" / "results" / "training.json"


def helpdesk_pairs(limit: int | None = None) -> list[dict]:
    pairs = []
    for line in HELPDESK.open(encoding="utf-8"):
        record = json.loads(line)
        bucket = int(hashlib.sha256(record["id"].encode()).hexdigest(), 16) % 100
        split = "val" if bucket < 15 else "train"
        quality = (record.get("meta") or {}).get("quality", {}).get("A")
        context = []
        for i, turn in enumerate(record["turns"]):
            if turn["role"] == "agent" and context and context[-1]["role"] == "customer":
                pairs.append(
                    {
                        "source": record["source"],
                        "split": split,
                        "context": list(context),
                        "target": turn["text"],
                        "quality": quality,
                        "key": f"{record['id']}:{i}",
                    }
                )
            context.append({"role": turn["role"], "text": turn["text"]})
    return pairs[:limit] if limit else pairs


def fill_store(database, pairs) -> None:
    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        session.add_all(
            [
                TrainingPair(
                    source=p["source"],
                    origin="imported",
                    split=p["split"],
                    context=p["context"],
                    target=p["target"],
                    quality=p["quality"],
                    labels={},
                    content_hash=hashlib.sha256(p["key"].encode()).hexdigest(),
                )
                for p in pairs
            ]
        )


def throughput_worker(home: str, mode: str, steps: int) -> dict:
    """Optimizer steps of the real model on helpdesk examples; tokens/s after one warm-up step."""
    import torch

    from chatbot.models.reply_model import reply_model_path
    from chatbot.pairs import PairRecord
    from chatbot.settings import load_settings
    from chatbot.text.prompt import PromptFormat
    from chatbot.training.examples import collate, encode_pair
    from chatbot.training.model import build_loss_module, load_base, prepare_trainable

    settings = load_settings(home=home)
    cfg = settings.training.model_copy(update={"mode": mode})
    prompt = PromptFormat.from_settings(settings.prompt)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, tokenizer = load_base(reply_model_path(settings.paths), "cpu")
    model = prepare_trainable(model, cfg)
    module = build_loss_module(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.peak_learning_rate)
    records = [
        PairRecord(i, p["source"], "imported", "train", p["context"], p["target"])
        for i, p in enumerate(helpdesk_pairs(limit=cfg.batch_size * (steps + 1)))
    ]
    batches = [records[i : i + cfg.batch_size] for i in range(0, len(records), cfg.batch_size)]
    tokens, seconds = 0, 0.0
    for n, batch in enumerate(batches[: steps + 1]):
        t = collate(
            [e for e in (encode_pair(tokenizer, p, [], cfg, prompt) for p in batch) if e],
            tokenizer.pad_token_id,
        )
        started = time.perf_counter()
        loss, _, _ = module(
            t["input_ids"], t["attention_mask"], t["labels"], t["weights"], cfg.label_smoothing
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if n > 0:  # the first step warms up kernels and allocations
            seconds += time.perf_counter() - started
            tokens += int(t["attention_mask"].sum())
    return {
        "mode": mode,
        "trainable_layers": cfg.layers_to_train(int(model.config.num_hidden_layers), False)
        or "all",
        "trainable_parameters": sum(p.numel() for p in params),
        "steps_measured": steps,
        "batch_size": cfg.batch_size,
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds_per_step": round(seconds / steps, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_model_mb": round(base_rss / 1024, 1),
    }


def budget_run(home: str, minutes: float, mode: str) -> dict:
    from chatbot.config import ensure_home
    from chatbot.models.reply_model import reply_model_path
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.training.run import run_training

    base = reply_model_path(load_settings(home=home).paths)
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(
            home=Path(scratch) / "home",
            reply_model_path=base,
            training={"max_minutes": minutes, "mode": mode, "auto_promote": False},
        )
        ensure_home(settings.paths)
        upgrade(settings.resolved_database_url)
        database = Database(settings.resolved_database_url)
        pairs = helpdesk_pairs()
        fill_store(database, pairs)
        started = time.perf_counter()
        result = run_training(
            settings.paths,
            settings.training,
            settings.prompt,
            database,
            evidence_note="none (benchmark builds no index)",
        )
        database.dispose()
        m = result.metrics
        return {
            "dataset": "transcripts/stc3_helpdesk_en.train.jsonl",
            "pairs": len(pairs),
            "train_pairs": sum(p["split"] == "train" for p in pairs),
            "val_pairs_used": result.evaluation["val_pairs"],
            "budget_minutes": minutes,
            "mode": mode,
            "val_loss_before": round(m["val_loss_before"], 4),
            "val_loss_after": round(m["val_loss"], 4),
            "val_loss_best_checkpoint": round(m["val_loss_best_checkpoint"], 4),
            "val_loss_fused": None
            if m["val_loss_fused"] is None
            else round(m["val_loss_fused"], 4),
            "kept": m["model"],
            "steps": m["steps"],
            "stopped_because": m["stopped_because"],
            "train_tokens": m["train_tokens"],
            "tokens_per_second": m["tokens_per_second"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "peak_memory_mb": m["peak_memory_mb"],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        default=os.environ.get("CHATBOT_HOME", str(Path.home() / ".local/share/chatbot")),
        help="data directory whose model cache holds the converted SmolLM2",
    )
    parser.add_argument("--steps", type=int, default=4, help="measured optimizer steps per mode")
    parser.add_argument(
        "--budget-minutes", type=float, default=10.0, help="time budget of the helpdesk run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 steps per mode, a 3-minute helpdesk run"
    )
    parser.add_argument("--worker", choices=["lora", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.budget_minutes = 2, 3.0
    if args.worker:
        print(json.dumps(throughput_worker(args.home, args.worker, args.steps)))
        return 0
    if not HELPDESK.is_file():
        print(f"skipped: the shared datasets are not at {HELPDESK.parent}", file=sys.stderr)
        return 0
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "throughput": [],
    }
    for mode in ("lora", "full"):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--home",
                args.home,
                "--steps",
                str(args.steps),
                "--worker",
                mode,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        row = json.loads(done.stdout.strip().splitlines()[-1])
        results["throughput"].append(row)
        print(
            f"{mode:>4}: {row['tokens_per_second']:8.1f} training tokens/s, {row['seconds_per_step']:.1f} s/step "
            f"(batch {row['batch_size']}), peak RSS {row['peak_rss_mb']:.0f} MB, "
            f"{row['trainable_parameters'] / 1e6:.2f}M trainable parameters ({row['trainable_layers']} layers)"
        )
    run = budget_run(args.home, args.budget_minutes, "lora")
    results["helpdesk_budget_run"] = run
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print(
        f"helpdesk, {args.budget_minutes:g} min LoRA: validation loss {run['val_loss_before']:.4f} -> {run['val_loss_after']:.4f} "
        f"({run['steps']} steps, {run['train_tokens']} tokens, {run['wall_seconds']:.0f}s, kept {run['kept']})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
