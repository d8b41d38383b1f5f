"""Benchmark of the dialogue manager on the bundled demo shop, on this machine's CPU.

Latency (p50/p95 per reply) for: a cache hit, retrieval only, one-pass generation and
full refinement, the generating paths with the float32 and the int8 reply model; the
time to the first streamed piece; the reply model's tokens/s (float32 and int8); and
the quality of one-pass vs refined vs fused replies on validation pairs, judged against
the agents' real replies by ROUGE-L and MiniLM embedding cosine (not by the scorer that
refinement optimises).

    .venv/bin/python benchmarks/bench_dialogue.py [--home DIR] [--model-cache DIR] [--quality N] [--latency N]

Prints the figures and writes them to benchmarks/results/dialogue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402


def pct(values, q):
    values = sorted(values)
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return round(values[index], 4)


def summary(values):
    return {
        "n": len(values),
        "p50_s": pct(values, 50),
        "p95_s": pct(values, 95),
        "mean_s": round(statistics.mean(values), 4),
    }


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def setup(home: Path, model_cache: Path | None):
    from chatbot.config import ensure_home
    from chatbot.indexing.builder import update_index
    from chatbot.ingest.importer import import_paths
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    overrides = {"home": home}
    if model_cache:
        overrides["model_cache"] = model_cache
    settings = load_settings(**overrides)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    import_paths(database, [REPO / "data" / "demo_shop.jsonl"], ingest=settings.ingest)
    update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    return settings, database


def validation_cases(database, limit):
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        rows = session.execute(
            select(TrainingPair.id, TrainingPair.context, TrainingPair.target, TrainingPair.labels)
            .where(TrainingPair.split == "val")
            .order_by(TrainingPair.id)
        ).all()
    cases = []
    for pair_id, context, target, labels in rows:
        if labels.get("topic") in ("out_of_scope", "handoff"):
            continue  # these are hand-offs, not replies to judge
        turns = [t["text"] for t in context]
        cases.append(
            {"pair_id": pair_id, "history": turns[:-1], "query": turns[-1], "target": target}
        )
    return cases[:limit]


def replay(manager, case):
    """Answer a validation case in a fresh conversation that holds its earlier turns."""
    from chatbot.store.conversations import add_message, start_conversation

    with manager.database.session() as session:
        cid = start_conversation(session=session, source="bench").id
        for i, text in enumerate(case["history"]):
            add_message(
                session=session,
                conversation_id=cid,
                role="customer" if i % 2 == 0 else "agent",
                text=text,
            )
    return manager.respond(case["query"], cid, source="bench")


def tokens_per_second(model, tokenizer, n_new=32, repeats=1):
    import torch

    from chatbot.models.generate import chat_inputs

    inputs = chat_inputs(
        tokenizer, [{"role": "user", "content": "How do I return a kettle I bought last week?"}]
    )
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=n_new,
                min_new_tokens=n_new,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        produced = out.shape[1] - inputs["input_ids"].shape[1]
        rates.append(produced / (time.perf_counter() - started))
    return round(max(rates), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/chatbot-bench-dialogue"))
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=None,
        help="Where the converted reply model is (default <home>/models).",
    )
    parser.add_argument("--latency", type=int, default=8, help="Replies per latency scenario.")
    parser.add_argument(
        "--quality",
        type=int,
        default=16,
        help="Validation pairs for the quality comparison (float32).",
    )
    parser.add_argument(
        "--quality-int8",
        type=int,
        default=8,
        help="Validation pairs for the int8 quality comparison.",
    )
    parser.add_argument(
        "--only", choices=["all", "quality"], default="all", help="quality: skip the latency runs."
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "dialogue.json"
    )
    args = parser.parse_args()

    import numpy as np
    import torch
    from sqlalchemy import select, update

    from chatbot.dialogue.compress import linear_weight_bytes, quantize_int8
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.schema import TrainingPair
    from chatbot.text.prompt import PromptFormat
    from chatbot.text.rouge import rouge_l

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    settings, database = setup(args.home, args.model_cache)
    embedder = load_embedder(settings.paths)
    retriever = open_retriever(settings.paths, settings.retrieval, database, model=embedder)
    from chatbot.dialogue.sources import BaseReplyModelSource

    fp32_source = BaseReplyModelSource(settings.paths)
    model, tokenizer, version = fp32_source.get()
    int8_model = quantize_int8(model)

    class Fixed:
        def __init__(self, model, name):
            self.loaded = (model, tokenizer, name)

        def get(self):
            return self.loaded

    sources = {"fp32": Fixed(model, version), "int8": Fixed(int8_model, version + "+int8")}
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "reply_model": version,
        "linear_weight_mb": {
            "fp32": round(linear_weight_bytes(model) / 2**20, 1),
            "int8": round(linear_weight_bytes(int8_model) / 2**20, 1),
        },
    }
    log(f"setup {time.perf_counter() - started:.1f}s; load average {os.getloadavg()}")

    results["tokens_per_s"] = {
        name: tokens_per_second(src.loaded[0], tokenizer) for name, src in sources.items()
    }
    log("tokens/s", results["tokens_per_s"])

    cases = validation_cases(database, max(args.quality, args.latency))
    dialogue = settings.dialogue
    results["settings"] = {
        k: getattr(dialogue, k)
        for k in ("max_rounds", "min_improvement", "max_new_tokens", "fuse_retrieved", "retrieve_k")
    }

    def save():
        """Write what is measured so far (a long run cut short still leaves figures)."""
        results["load_average_at_end"] = os.getloadavg()
        results["seconds"] = round(time.perf_counter() - started, 1)
        save_results(args.out, results)

    def manager(source="fp32", **overrides):
        return DialogueManager(
            dialogue.model_copy(update=overrides),
            database,
            retriever,
            sources[source] if source else None,
            PromptFormat.from_settings(settings.prompt),
        )

    # Warm up the retriever and both models once.
    # (tokens_per_second above already ran both models.)
    manager(None, generate=False).respond("hello, where is my order?")

    # Quality on validation pairs: the agents' real replies are the reference.
    def cosine(a, b):
        va, vb = embedder.encode([a, b], normalize_embeddings=True)
        return float(np.dot(va, vb))

    quality = {}
    for source in ("fp32", "int8"):
        per = {
            k: {"rouge_l": [], "cosine": []}
            for k in (
                "one_pass_draft",
                "refined_draft",
                "retrieved_top1",
                "fused_one_pass",
                "fused_refined",
            )
        }
        rounds = []
        for case in cases[: args.quality if source == "fp32" else args.quality_int8]:
            reply = replay(
                manager(
                    source,
                    cache_enabled=False,
                    max_rounds=dialogue.max_rounds or 2,
                    answer_threshold=0.0,
                    handoff_threshold=0.0,
                    handoff_on_out_of_scope=False,
                ),
                case,
            )
            if not reply.trace:
                continue
            draft0 = reply.trace[0]
            best_draft = max(reply.trace, key=lambda t: t.score)
            retrieved = [c for c in reply.to_dict()["candidates"] if c.get("origin") == "retrieved"]
            found = retriever.search(case["query"], history=case["history"], k=1).hits
            top1 = {"text": found[0].reply_text} if found else None
            fused_one = max(
                [{"text": draft0.text, "score": draft0.score}, *retrieved], key=lambda c: c["score"]
            )
            texts = {
                "one_pass_draft": draft0.text,
                "refined_draft": best_draft.text,
                "retrieved_top1": top1["text"] if top1 else "",
                "fused_one_pass": fused_one["text"],
                "fused_refined": reply.text,
            }
            for k, text in texts.items():
                per[k]["rouge_l"].append(rouge_l(text, case["target"]))
                per[k]["cosine"].append(cosine(text, case["target"]) if text else 0.0)
            rounds.append(len(reply.trace))
        quality[source] = {
            k: {m: round(statistics.mean(v), 4) for m, v in d.items() if v} for k, d in per.items()
        }
        quality[source]["n"] = len(rounds)
        quality[source]["mean_rounds_written"] = (
            round(statistics.mean(rounds), 2) if rounds else None
        )
        log("quality", source, json.dumps(quality[source]))
    results["quality"] = quality
    save()
    if args.only == "quality":
        return

    latency: dict = {}
    # Cache hit: approve some indexed first-turn pairs, then ask their exact questions.
    with database.session() as session:
        rows = session.execute(
            select(TrainingPair.id, TrainingPair.context, TrainingPair.labels)
            .where(TrainingPair.split == "train")
            .order_by(TrainingPair.id)
        ).all()
        firsts = [
            (i, c[-1]["text"])
            for i, c, labels in rows
            if len(c) == 1 and labels.get("topic") not in ("out_of_scope", "handoff")
        ][: args.latency]
        session.execute(
            update(TrainingPair)
            .where(TrainingPair.id.in_([i for i, _ in firsts]))
            .values(origin="agent_approved")
        )
    times, hits = [], 0
    for _, question in firsts:
        reply = manager("fp32").respond(question)
        hits += reply.reason == "cache_hit"
        times.append(reply.timings["total"])
    latency["cache_hit"] = {**summary(times), "hit_rate": hits / len(firsts)}
    log("cache_hit", latency["cache_hit"])

    def scenario(name, source, **overrides):
        times, stages = [], {}
        for case in cases[: args.latency]:
            # Every case takes the path measured: no early hand-off, no cache.
            reply = replay(
                manager(
                    source,
                    cache_enabled=False,
                    handoff_on_out_of_scope=False,
                    answer_threshold=0.0,
                    handoff_threshold=0.0,
                    **overrides,
                ),
                case,
            )
            times.append(reply.timings["total"])
            for k, v in reply.timings.items():
                stages.setdefault(k, []).append(v)
        latency[name] = {
            **summary(times),
            "stage_mean_s": {k: round(statistics.mean(v), 4) for k, v in stages.items()},
        }
        log(name, latency[name]["p50_s"], latency[name]["p95_s"])

    scenario("retrieval_only", None, generate=False)
    for source in ("fp32", "int8"):
        scenario(f"one_pass_{source}", source, max_rounds=0)
        scenario(
            f"refined_{source}", source, max_rounds=dialogue.max_rounds or 2
        )  # refinement on, whatever the default

    # Time to the first streamed piece (a draft piece while thinking, and the final text).
    first = {}
    for source in ("fp32", "int8"):
        draft_times, final_times = [], []
        for case in cases[: max(3, args.latency // 2)]:
            m = manager(
                source,
                cache_enabled=False,
                max_rounds=0,
                handoff_on_out_of_scope=False,
                handoff_threshold=0.0,
                answer_threshold=0.0,
            )
            t0 = time.perf_counter()
            got_draft = got_final = None
            for event in m.respond_stream(case["query"]):
                now = time.perf_counter() - t0
                if event.kind == "draft" and got_draft is None and event.text.strip():
                    got_draft = now
                if event.kind == "token" and got_final is None:
                    got_final = now
            if got_draft is not None:
                draft_times.append(got_draft)
            if got_final is not None:
                final_times.append(got_final)
        first[source] = {
            "first_draft_piece": summary(draft_times) if draft_times else None,
            "first_final_token": summary(final_times) if final_times else None,
        }
    latency["first_streamed"] = first
    log("first streamed", first)
    results["latency"] = latency
    save()

    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
