"""Benchmark of the out-of-scope hand-off gate: does the assistant hand off what it
cannot answer, and only that?

For the bundled demo shop and for real support sets from `../shared/datasets`
(STC-3 helpdesk, IBM Twitter care, TWACS airline), each in its own fresh home: import
the transcripts (split by conversation), build the index with `chatbot index`'s gate
calibration, then put two kinds of question to it:

- in-domain: the customer turns of the held-out test conversations (with their earlier
  turns as history), all of them for the demo, at most --limit for the real sets;
  pairs the demo labels out_of_scope are counted on the other side, and those it labels
  handoff ("a human, please") are left out of both (they are handed off by design);
- out-of-domain: questions from elsewhere. Demo: Banking77 questions and CLINC150's `oos`
  items; real sets: the first customer turns of the other real sets, and CLINC150 `oos`.

For each side: the share handed off as out of scope (the gate said so, or the best past
answer is labelled out of scope), with a 95% percentile-bootstrap interval (resampling
conversations for held-out turns, questions otherwise); and for the in-domain side the
share handed off for ANY reason by the real DialogueManager on the retrieval path
(dialogue.generate=false), each turn replayed in a fresh conversation holding its history.
The five questions of issue 11 are asked of the demo shop through the manager too.

    .venv/bin/python benchmarks/handoff_gate.py [--limit 300] [--only demo,stc3_helpdesk_en] [--home DIR]

Prints the figures and writes them to benchmarks/results/handoff_gate.json. Real sets are
skipped, with a message, when ../shared/datasets is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402
from chatbot.pairs import answers_opening_message  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"
REAL_SETS = {
    "stc3_helpdesk_en": "transcripts/stc3_helpdesk_en.train.jsonl",
    "ibm_twitter_care": "transcripts/ibm_twitter_care.dev.jsonl",
    "twacs_airline": "transcripts/twacs_airline.train.jsonl",
}
ISSUE_QUESTIONS = {  # question -> what a support lead expects of the demo shop
    "Hi, my parcel still hasn't arrived, where is my order?": "answer",
    "How do I return a jacket that doesn't fit?": "answer",
    "When will I get my refund?": "answer",
    "Can I change the delivery address of my order?": "answer",
    "Do you ship to Canada?": "handoff",
}
# Banking77 intents whose questions a shop's own payments, refunds and account answers
# also address (a card declined at checkout, a charge seen twice, "delete my account"):
# reported apart, since handing them off is not clearly right for a shop.
SHOP_SHARED_B77 = {
    "transaction_charged_twice",
    "terminate_account",
    "card_payment_not_recognised",
    "request_refund",
    "refund_not_showing_up",
    "declined_card_payment",
    "reverted_card_payment?",
    "pending_card_payment",
    "card_payment_fee_charged",
    "extra_charge_on_statement",
    "edit_personal_details",
    "direct_debit_payment_not_recognised",
}
GOAL = {"in_domain_out_of_scope_max": 0.15, "out_of_domain_handed_off_min": 0.85}
RESAMPLES = 2000


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def share(flags, groups=None, *, resamples=RESAMPLES, seed=0) -> dict:
    """Share of True with a 95% percentile-bootstrap interval, resampling `groups`
    (e.g. conversations) when given, items otherwise."""
    import numpy as np

    flags = np.asarray(flags, dtype=float)
    if flags.size == 0:
        return {"n": 0, "share": None, "low": None, "high": None}
    groups = list(range(flags.size)) if groups is None else list(groups)
    keys = sorted(set(groups), key=str)
    index = {k: i for i, k in enumerate(keys)}
    gid = np.array([index[g] for g in groups])
    sums = np.bincount(gid, weights=flags, minlength=len(keys))
    counts = np.bincount(gid, minlength=len(keys)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(keys), size=(resamples, len(keys)))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "n": int(flags.size),
        "share": round(float(flags.mean()), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
    }


def fmt(s: dict) -> str:
    if not s["n"]:
        return "n=0"
    return f"{s['share']:.1%} [{s['low']:.1%}, {s['high']:.1%}] (n={s['n']})"


def build(home: Path, files: list[Path]):
    """A fresh home with `files` imported and indexed (with the gate's calibration)."""
    from chatbot.config import ensure_home
    from chatbot.indexing.builder import update_index
    from chatbot.ingest.importer import import_paths
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    shutil.rmtree(home, ignore_errors=True)
    settings = load_settings(home=home)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    import_paths(database, files, ingest=settings.ingest)
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    return settings, database, report


def held_out_turns(database, split: str = "test") -> list[dict]:
    """Every customer turn of the `split` conversations that has an agent reply (a pair),
    with its earlier turns."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        rows = session.execute(
            select(
                TrainingPair.id,
                TrainingPair.context,
                TrainingPair.labels,
                TrainingPair.conversation_id,
            )
            .where(TrainingPair.split == split)
            .order_by(TrainingPair.id)
        ).all()
    items = []
    for pair_id, context, labels, conversation_id in rows:
        turns = [
            (t.get("role", "customer"), t.get("text", ""))
            if isinstance(t, dict)
            else ("customer", str(t))
            for t in context or []
        ]
        if not turns:
            continue
        items.append(
            {
                "pair_id": pair_id,
                "query": turns[-1][1],
                "history": turns[:-1],
                # A conversation's topic label is about its opening message (as the manager reads it).
                "topic": (labels or {}).get("topic") if answers_opening_message(context) else None,
                "group": conversation_id,
            }
        )
    return items


def first_customer_turns(path: Path) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            for turn in record.get("turns", []):
                if turn.get("role") == "customer" and turn.get("text", "").strip():
                    out.append(turn["text"].strip())
                    break
    return out


def intent_texts(
    name: str, *, intent: str | None = None, exclude: str | None = None, labelled: bool = False
) -> list:
    """Texts of an intent set (`labelled`: (text, intent) pairs), each text once."""
    out = []
    for file in sorted((DATASETS / "intents").glob(f"{name}*.jsonl")):
        with file.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                if intent is not None and record.get("intent") != intent:
                    continue
                if exclude is not None and record.get("intent") == exclude:
                    continue
                out.append((record["text"], record.get("intent")) if labelled else record["text"])
    if labelled:
        return sorted(dict(out).items())
    return sorted(set(out))


def gate(settings, retriever, topics, items: list[dict]) -> tuple[list[bool], list[float]]:
    """Handed off as out of scope: the gate's verdict, or the best past answer is
    labelled out of scope (what the dialogue manager does before anything else)."""
    oos_topics = set(settings.dialogue.out_of_scope_topics)
    flags, scores = [], []
    for item in items:
        result = retriever.search(
            item["query"], history=[t for _, t in item.get("history", [])], k=1
        )
        top_topic = topics.get(result.hits[0].pair_id) if result.hits else None
        flags.append(bool(result.out_of_scope or not result.hits or top_topic in oos_topics))
        scores.append(result.scope_score)
    return flags, scores


def through_manager(settings, database, retriever, items: list[dict]) -> list:
    """Each item answered by the real DialogueManager on the retrieval path, in a fresh
    conversation that holds its earlier turns."""
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.store.conversations import add_message, start_conversation
    from chatbot.text.prompt import PromptFormat

    manager = DialogueManager(
        settings.dialogue.model_copy(update={"generate": False}),
        database,
        retriever,
        None,
        PromptFormat.from_settings(settings.prompt),
        settings.ingest,
    )
    replies = []
    for item in items:
        cid = None
        if item.get("history"):
            with database.session() as session:
                cid = start_conversation(session=session, source="bench").id
                for role, text in item["history"]:
                    add_message(
                        session=session,
                        conversation_id=cid,
                        role="agent" if role == "agent" else "customer",
                        text=text,
                    )
        replies.append(manager.respond(item["query"], cid, source="bench"))
    return replies


def evaluate(
    name,
    settings,
    database,
    report,
    inside: list[dict],
    outside: dict[str, list[str]],
    extra_outside: list[dict] = (),
    issue: dict | None = None,
) -> dict:
    from chatbot.indexing.calibration import pair_topics
    from chatbot.retrieval.retriever import open_retriever

    started = time.perf_counter()
    retriever = open_retriever(settings.paths, settings.retrieval, database)
    topics = pair_topics(database)
    result: dict = {
        "index": {"pairs": report.pair_count, "version": report.version},
        "calibration": report.calibration,
    }

    in_flags, in_scores = gate(settings, retriever, topics, inside)
    groups = [i["group"] for i in inside]
    result["in_domain"] = {"out_of_scope": share(in_flags, groups)}
    replies = through_manager(settings, database, retriever, inside)
    decisions = Counter(r.decision for r in replies)
    reasons = Counter(r.reason.split(":")[0] for r in replies if r.decision == "handoff")
    result["in_domain"]["handed_off_any_reason"] = share(
        [r.decision == "handoff" for r in replies], groups
    )
    result["in_domain"]["held_for_review"] = share([r.decision == "held" for r in replies], groups)
    result["in_domain"]["decisions"] = dict(decisions)
    result["in_domain"]["handoff_reasons"] = dict(reasons)
    log(
        f"[{name}] in-domain: out of scope {fmt(result['in_domain']['out_of_scope'])}; "
        f"handed off (any reason, manager) {fmt(result['in_domain']['handed_off_any_reason'])}; reasons {dict(reasons)}"
    )

    result["out_of_domain"] = {}
    pooled = []
    for source, questions in outside.items():
        labels = [q[1] if isinstance(q, tuple) else None for q in questions]
        flags, _ = gate(
            settings,
            retriever,
            topics,
            [{"query": q[0] if isinstance(q, tuple) else q} for q in questions],
        )
        pooled += flags
        result["out_of_domain"][source] = share(flags)
        if source == "banking77":
            bank_only = [flag for label, flag in zip(labels, flags) if label not in SHOP_SHARED_B77]
            result["out_of_domain"]["banking77_bank_only_intents"] = share(bank_only)
            log(
                f"[{name}] out-of-domain banking77 without shop-shared intents: {fmt(share(bank_only))}"
            )
        if any(labels):  # which intents pass the gate most often
            passed = Counter(label for label, flag in zip(labels, flags) if not flag)
            result.setdefault("out_of_domain_passed_intents", {})[source] = dict(
                passed.most_common(15)
            )
        log(
            f"[{name}] out-of-domain {source}: handed off as out of scope {fmt(result['out_of_domain'][source])}"
        )
    if extra_outside:
        flags, _ = gate(settings, retriever, topics, list(extra_outside))
        pooled += flags
        result["out_of_domain"]["own_labelled_out_of_scope"] = share(
            flags, [i["group"] for i in extra_outside]
        )
        log(
            f"[{name}] out-of-domain own labelled: {fmt(result['out_of_domain']['own_labelled_out_of_scope'])}"
        )
    result["out_of_domain_pooled"] = share(pooled)
    in_domain_ok = (
        result["in_domain"]["out_of_scope"]["share"] <= GOAL["in_domain_out_of_scope_max"]
    )

    def sources_ok(skip: str) -> bool:
        return all(
            v["share"] >= GOAL["out_of_domain_handed_off_min"]
            for k, v in result["out_of_domain"].items()
            if v["n"] and k != skip
        )

    # Every source as it is (Banking77 with the intents a shop also answers) ...
    result["goal_met"] = in_domain_ok and sources_ok("banking77_bank_only_intents")
    # ... and with Banking77 read as its bank-only intents (SHOP_SHARED_B77 left out).
    result["goal_met_bank_only_intents"] = in_domain_ok and sources_ok("banking77")

    if issue:
        asked = through_manager(settings, database, retriever, [{"query": q} for q in issue])
        result["issue_questions"] = []
        for (question, expected), reply in zip(issue.items(), asked):
            got = "handoff" if reply.decision == "handoff" else "answer"
            row = {
                "question": question,
                "expected": expected,
                "decision": reply.decision,
                "reason": reply.reason,
                "ok": got == expected,
                "reply": reply.shown_text[:160],
                "scope_score": retriever.search(question, k=1).scope_score,
                "retrieval_s": reply.timings.get("total"),
            }
            result["issue_questions"].append(row)
            log(
                f"[{name}] {'ok ' if row['ok'] else 'BAD'} {question!r}: {reply.decision} ({reply.reason}) "
                f"score {row['scope_score']:.3f}"
            )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/chatbot-bench-handoff-gate"))
    parser.add_argument(
        "--limit",
        type=int,
        default=300,
        help="Questions per side and source at most (demo held-out turns: all).",
    )
    parser.add_argument("--only", default="", help="Comma-separated: demo and/or real set names.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "handoff_gate.json"
    )
    args = parser.parse_args()
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    rng = random.Random(args.seed)

    def cap(items, n=args.limit):
        items = list(items)
        return items if len(items) <= n else rng.sample(items, n)

    results: dict = {
        "command": "python benchmarks/handoff_gate.py " + " ".join(sys.argv[1:]),
        "goal": GOAL,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "limit": args.limit,
        "seed": args.seed,
        "sets": {},
        "skipped": {},
    }
    have_data = DATASETS.is_dir()
    if not have_data:
        log(
            f"shared datasets not found at {DATASETS}: out-of-domain intent sets and real sets skipped"
        )

    if not wanted or "demo" in wanted:
        settings, database, report = build(args.home / "demo", [REPO / "data" / "demo_shop.jsonl"])
        turns = held_out_turns(database)
        oos_topics = set(settings.dialogue.out_of_scope_topics)
        inside = [
            t for t in turns if t["topic"] not in oos_topics | set(settings.dialogue.handoff_topics)
        ]
        own_outside = [t for t in turns if t["topic"] in oos_topics]
        outside = {}
        if have_data:
            outside["banking77"] = cap(intent_texts("banking77", labelled=True))
            outside["clinc150_oos"] = cap(intent_texts("clinc150", intent="oos"))
        results["sets"]["demo"] = evaluate(
            "demo", settings, database, report, inside, outside, own_outside, issue=ISSUE_QUESTIONS
        )
        save_results(args.out, results)

    for name, rel in REAL_SETS.items():
        if wanted and name not in wanted:
            continue
        if not have_data:
            results["skipped"][name] = f"{DATASETS} is absent"
            continue
        settings, database, report = build(args.home / name, [DATASETS / rel])
        inside = cap(held_out_turns(database))
        outside = {
            other: cap(first_customer_turns(DATASETS / other_rel), args.limit // 2)
            for other, other_rel in REAL_SETS.items()
            if other != name
        }
        outside["clinc150_oos"] = cap(intent_texts("clinc150", intent="oos"), args.limit // 2)
        results["sets"][name] = evaluate(name, settings, database, report, inside, outside)
        save_results(args.out, results)

    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = os.getloadavg()
    save_results(args.out, results)
    print(
        json.dumps(
            {
                k: {
                    "in_domain_out_of_scope": v["in_domain"]["out_of_scope"],
                    "in_domain_handed_off_any_reason": v["in_domain"]["handed_off_any_reason"],
                    "out_of_domain": v["out_of_domain"],
                    "threshold": (v["calibration"] or {}).get("raw_threshold"),
                    "interval": [
                        (v["calibration"] or {}).get("raw_threshold_low"),
                        (v["calibration"] or {}).get("raw_threshold_high"),
                    ],
                }
                for k, v in results["sets"].items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
