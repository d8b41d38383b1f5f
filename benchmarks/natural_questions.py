"""Benchmark: how the assistant answers naturally worded customer questions on the
bundled demo shop (Northwind Goods), questions written independently of the shop's
generated history (benchmarks/natural_questions/README.md describes the sets).

Each item is put to one DialogueManager (opened as `chatbot serve` opens it, on a data
directory prepared as `chatbot serve --demo` prepares it) in a new conversation: its
messages are sent in turn and the reply to the last one is scored. One outcome per item:

- right: an answer was expected and the reply was sent as an answer (or asked for the
  customer's order number: clarify with reason needs_case) whose text holds one
  alternative of every `must` group and none of `must_not`; an act was expected and the
  reply is an act; a decline was expected and the reply is a decline;
- right_handoff: a hand-off was expected and the conversation was handed off (or held);
- clarified: the reply is a clarifying question with options (where that is not already
  right). The simulated customer then picks the topic nearest the item's `about`
  (cosine of the index's embedder) and sends its label, or, where the key says the
  history holds no answer (a hand-off or a decline is right), the "Something else"
  choice, since none of the topics offered can be theirs; the follow-up reply is scored
  by the same rules and the clarification counts as resolved when it is right or
  right_handoff;
- needless_handoff: handed off (or held) where an answer, an act or a decline was expected;
- wrong: anything else (an answer failing must/must_not, an answer or act or decline where
  another kind was expected, a clarifying question without options, silence, an error).

Shares come with 95% bootstrap intervals over items (chatbot.evaluation.intervals,
fixed seed). The validation set is for tuning; the test set is read once, at the end.

    .venv/bin/python benchmarks/natural_questions.py [--split val|test] [--home DIR]
        [--limit N] [--out PATH] [--verbose]

Without --home a fresh temporary data directory is prepared with the demo data and
removed afterwards; with --home the given directory is prepared the same way (idempotent)
and the benchmark's conversations are stored in it. Prints a table and writes
benchmarks/results/natural_questions_<split>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402

SETS_DIR = REPO / "benchmarks" / "natural_questions"
SPLIT_FILES = {"val": "demo_shop.val.jsonl", "test": "demo_shop.test.jsonl"}
CATEGORIES = (
    "topic",
    "typo",
    "two_questions",
    "unanswerable",
    "own_case",
    "act",
    "out_of_domain",
    "asks_for_person",
)
TOPICS = ("orders", "returns", "refunds", "delivery", "account", "payments", "contact", "none")
KINDS = ("answer", "act", "decline", "handoff")
ACTS = ("greeting", "thanks", "goodbye", "bot_question", "yes", "no")
OUTCOMES = ("right", "right_handoff", "clarified", "needless_handoff", "wrong")
GOAL = {
    "right_share_min": 0.85,
    "wrong_share_max": 0.02,
    "act_items_all_right": True,
    "out_of_domain_items_wrong_max": 0,
    "clarifications_resolved_min": 0.5,
}
SENT_CHARS = 300


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- the question set --------------------------------------------------------------------


def load_items(path: Path) -> list[dict[str, Any]]:
    """The items of a question set, checked: a bad line stops the run with its number."""
    if not path.is_file():
        raise SystemExit(f"question set {path} not found")
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                problem = item_problem(item)
            except json.JSONDecodeError as exc:
                problem = f"not JSON ({exc})"
            if problem is None and item["id"] in seen:
                problem = f"id {item['id']!r} repeated"
            if problem:
                raise SystemExit(f"{path}:{number}: {problem}")
            seen.add(item["id"])
            items.append(item)
    return items


def item_problem(item: Any) -> str | None:
    """What is wrong with one item, or None."""
    if not isinstance(item, dict):
        return "not an object"
    for key in ("id", "category", "topic", "messages", "about", "expect"):
        if key not in item:
            return f"no {key!r}"
    if item["category"] not in CATEGORIES:
        return f"category {item['category']!r} is not one of {', '.join(CATEGORIES)}"
    if item["topic"] not in TOPICS:
        return f"topic {item['topic']!r} is not one of {', '.join(TOPICS)}"
    messages = item["messages"]
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, str) and m.strip() for m in messages)
    ):
        return "messages must be a non-empty list of non-empty strings"
    expect = item["expect"]
    kind = expect.get("kind") if isinstance(expect, dict) else None
    if kind not in KINDS:
        return f"expect.kind {kind!r} is not one of {', '.join(KINDS)}"
    if kind == "answer":
        must = expect.get("must", [])
        if not isinstance(must, list) or not all(
            isinstance(group, list) and group and all(isinstance(a, str) and a for a in group)
            for group in must
        ):
            return "expect.must must be a list of non-empty lists of strings"
        if not all(isinstance(a, str) and a for a in expect.get("must_not", [])):
            return "expect.must_not must be a list of strings"
    if kind == "act" and expect.get("act") not in ACTS:
        return f"expect.act {expect.get('act')!r} is not one of {', '.join(ACTS)}"
    return None


# -- scoring -----------------------------------------------------------------------------


def text_check(expect: dict[str, Any], text: str) -> tuple[list[list[str]], list[str]]:
    """(the must groups with no alternative in the text, the must_not phrases in it)."""
    lowered = (text or "").lower()
    missing = [
        group for group in expect.get("must", []) if not any(a.lower() in lowered for a in group)
    ]
    forbidden = [p for p in expect.get("must_not", []) if p.lower() in lowered]
    return missing, forbidden


def judge(expect: dict[str, Any], reply: Any) -> tuple[str, dict[str, Any]]:
    """The outcome of one reply against the item's key, and what the text check found."""
    from chatbot.dialogue.records import ANSWERED, Decision, Reason

    kind = expect["kind"]
    decision = reply.decision
    reason = str(reply.reason or "")
    detail: dict[str, Any] = {}
    if kind == "answer":
        missing, forbidden = text_check(expect, reply.shown_text)
        detail = {"missing": missing, "forbidden": forbidden}
        asks_case = decision == Decision.CLARIFY and reason.startswith(Reason.NEEDS_CASE.value)
        if (decision in ANSWERED or asks_case) and not missing and not forbidden:
            return "right", detail
    elif kind == "act" and decision == Decision.ACT:
        return "right", detail
    elif kind == "decline" and decision == Decision.DECLINE:
        return "right", detail
    elif kind == "handoff" and decision in (Decision.HANDOFF, Decision.HELD):
        return "right_handoff", detail
    if decision == Decision.CLARIFY and reply.options:
        return "clarified", detail
    if decision in (Decision.HANDOFF, Decision.HELD):
        return "needless_handoff", detail
    return "wrong", detail


class OptionPicker:
    """The simulated customer's choice among a clarifying question's options: the topic
    whose embedding is nearest the item's `about` (cosine), or `other` ("Something
    else") when the item is one the history cannot answer."""

    def __init__(self, model: Any, other: str):
        self.model = model
        self.other = other

    def pick(self, item: dict[str, Any], options: list[str]) -> tuple[str, list[float]]:
        from chatbot.retrieval.embedding import embed_texts

        topics = [o for o in options if o != self.other]
        vectors = embed_texts(self.model, [item["about"], *topics])
        sims = [float(s) for s in vectors[1:] @ vectors[0]]
        if self.other in options and (
            item["expect"]["kind"] in ("handoff", "decline") or not topics
        ):
            return self.other, [round(s, 4) for s in sims]
        best = max(range(len(topics)), key=lambda i: sims[i])
        return topics[best], [round(s, 4) for s in sims]


def reply_record(reply: Any) -> dict[str, Any]:
    return {
        "decision": str(reply.decision),
        "reason": str(reply.reason),
        "sent": (reply.shown_text or "")[:SENT_CHARS],
        "options": list(reply.options or []),
    }


def run_item(manager: Any, picker: OptionPicker, item: dict[str, Any]) -> dict[str, Any]:
    """Send the item's messages in one new conversation and score the last reply (and,
    after a clarifying question with options, the follow-up to the chosen option)."""
    started = time.perf_counter()
    record: dict[str, Any] = {
        "id": item["id"],
        "category": item["category"],
        "topic": item["topic"],
        "expected": item["expect"]["kind"]
        + (f": {item['expect']['act']}" if item["expect"]["kind"] == "act" else ""),
        "messages": list(item["messages"]),
    }
    conversation_id = None
    reply = None
    earlier: list[dict[str, Any]] = []
    try:
        for text in item["messages"]:
            if reply is not None:
                earlier.append(reply_record(reply))
            reply = manager.respond(text, conversation_id, source="cli")
            conversation_id = reply.conversation_id
    except Exception as exc:  # a failing turn is recorded, the run goes on
        log(f"{item['id']}: {type(exc).__name__}: {exc}")
        record.update(
            outcome="wrong",
            decision="error",
            reason=f"{type(exc).__name__}: {exc}"[:SENT_CHARS],
            sent="",
            options=[],
            seconds=round(time.perf_counter() - started, 2),
        )
        return record
    assert reply is not None
    outcome, detail = judge(item["expect"], reply)
    record.update(outcome=outcome, **reply_record(reply), **detail)
    if earlier:
        record["earlier_replies"] = earlier
    if item["expect"]["kind"] == "act" and reply.decision == "act":
        record["act_named"] = str(reply.reason).split(":", 1)[-1].strip()
    if outcome == "clarified":
        chosen, sims = picker.pick(item, list(reply.options))
        follow: dict[str, Any] = {"chosen": chosen, "similarities": sims}
        try:
            second = manager.respond(chosen, conversation_id, source="cli")
            follow_outcome, follow_detail = judge(item["expect"], second)
            follow.update(outcome=follow_outcome, **reply_record(second), **follow_detail)
        except Exception as exc:  # recorded as wrong
            log(f"{item['id']} follow-up: {type(exc).__name__}: {exc}")
            follow.update(outcome="wrong", decision="error", reason=str(exc)[:SENT_CHARS])
        record["follow_up"] = follow
        record["clarification_resolved"] = follow["outcome"] in ("right", "right_handoff")
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


# -- figures -----------------------------------------------------------------------------


def figures(records: list[dict[str, Any]], *, resamples: int, seed: int) -> dict[str, Any]:
    """Counts and shares (95% bootstrap intervals, items resampled) of each outcome,
    overall and per category; the right share; the share of clarifications resolved."""
    import numpy as np

    from chatbot.evaluation.intervals import Resampler

    resampler = Resampler.by_group([r["id"] for r in records], resamples=resamples, seed=seed)
    outcome = np.array([r["outcome"] for r in records])
    category = np.array([r["category"] for r in records])
    clarified = outcome == "clarified"
    resolved = np.array([bool(r.get("clarification_resolved")) for r in records])
    right = np.isin(outcome, ("right", "right_handoff"))

    def block(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        out: dict[str, Any] = {"n": n, "outcomes": {}}
        for name in OUTCOMES:
            flags = outcome == name
            out["outcomes"][name] = {
                "count": int((flags & mask).sum()),
                "share": resampler.mean(flags, mask),
            }
        out["right_share"] = resampler.mean(right, mask)
        out["clarifications"] = {
            "count": int((clarified & mask).sum()),
            "resolved": int((clarified & resolved & mask).sum()),
            "resolved_share": resampler.mean(resolved, clarified & mask),
        }
        return out

    everything = np.ones(len(records), dtype=bool)
    return {
        "resamples": resamples,
        "seed": seed,
        "overall": block(everything),
        "per_category": {
            name: block(category == name) for name in CATEGORIES if (category == name).any()
        },
    }


def goal_checks(records: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    overall = result["overall"]
    acts = [r for r in records if r["category"] == "act"]
    ood_wrong = sum(
        1 for r in records if r["category"] == "out_of_domain" and r["outcome"] == "wrong"
    )
    resolved = overall["clarifications"]["resolved_share"]["value"]
    checks = {
        "right_share": overall["right_share"]["value"] >= GOAL["right_share_min"],
        "wrong_share": overall["outcomes"]["wrong"]["share"]["value"] <= GOAL["wrong_share_max"],
        "act_items_all_right": all(r["outcome"] == "right" for r in acts),
        "out_of_domain_none_wrong": ood_wrong <= GOAL["out_of_domain_items_wrong_max"],
        # No clarifying question asked: nothing failed to resolve.
        "clarifications_resolved": resolved is None
        or resolved >= GOAL["clarifications_resolved_min"],
    }
    return checks


def pct(cell: dict[str, Any]) -> str:
    if cell["value"] is None:
        return "-"
    return f"{cell['value']:.0%} [{cell['low']:.0%},{cell['high']:.0%}]"


def table(result: dict[str, Any]) -> str:
    head = ["category", "n", *OUTCOMES, "right share [95%]", "clar. resolved"]
    rows = []
    blocks = [*result["per_category"].items(), ("ALL", result["overall"])]
    for name, block in blocks:
        c = block["clarifications"]
        rows.append(
            [
                name,
                str(block["n"]),
                *(str(block["outcomes"][o]["count"]) for o in OUTCOMES),
                pct(block["right_share"]),
                f"{c['resolved']}/{c['count']}" if c["count"] else "-",
            ]
        )
    overall = result["overall"]
    rows.append(
        ["ALL share", "", *(pct(overall["outcomes"][o]["share"]) for o in OUTCOMES), "", ""]
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def show(record: dict[str, Any]) -> None:
    print(
        f"--- {record['id']} [{record['category']}/{record['topic']}] expected {record['expected']}"
    )
    for n, message in enumerate(record["messages"]):
        print(f"  customer> {message}")
        if n < len(record.get("earlier_replies", [])):
            earlier = record["earlier_replies"][n]
            print(f"  {earlier['decision']} ({earlier['reason']})> {earlier['sent']}")
    print(f"  {record['decision']} ({record['reason']})> {record['sent']}")
    if record.get("options"):
        print(f"  options: {record['options']}")
    if record.get("missing") or record.get("forbidden"):
        print(f"  missing: {record.get('missing')}  forbidden: {record.get('forbidden')}")
    follow = record.get("follow_up")
    if follow:
        print(f"  customer (picks)> {follow['chosen']}")
        print(f"  {follow.get('decision')} ({follow.get('reason')})> {follow.get('sent', '')}")
        print(f"  follow-up: {follow['outcome']}")
    print(f"  => {record['outcome']}  ({record['seconds']}s)")


# -- entry point -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--split",
        choices=sorted(SPLIT_FILES),
        default="val",
        help="val (tune on it) or test (held out: read once, at the end).",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="Data directory to use (prepared as `chatbot serve` does; the benchmark's "
        "conversations are stored in it). Default: a fresh temporary one with the demo data.",
    )
    parser.add_argument("--limit", type=int, default=None, help="Only the first N items.")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--verbose", action="store_true", help="Print every item with what was sent."
    )
    args = parser.parse_args()
    out = args.out or REPO / "benchmarks" / "results" / f"natural_questions_{args.split}.json"
    questions = SETS_DIR / SPLIT_FILES[args.split]
    items = load_items(questions)
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise SystemExit(f"no items in {questions}")

    from chatbot.bootstrap import prepare
    from chatbot.cli.manager import open_manager
    from chatbot.settings import Settings

    started = time.perf_counter()
    temporary = args.home is None
    home = Path(tempfile.mkdtemp(prefix="chatbot-natural-questions-")) if temporary else args.home
    try:
        settings = Settings(home=home)
        log(f"preparing {home} (demo data)")
        prepare(settings, demo=True, report=lambda line: log(f"  {line}"))
        manager, database = open_manager(settings)
        try:
            if manager.reply_source is not None:
                # Loaded before the first item, so no item is answered while it loads.
                manager.reply_source.get()
            model = getattr(manager.retriever, "model", None)
            if model is None:
                from chatbot.models.embedder import load_embedder

                model = load_embedder(settings.paths)
            picker = OptionPicker(model, manager.settings.clarify_other)
            prepared_s = time.perf_counter() - started
            log(f"asking {len(items)} items of {questions.name} ({prepared_s:.0f}s to prepare)")
            records = []
            for n, item in enumerate(items, 1):
                record = run_item(manager, picker, item)
                records.append(record)
                if args.verbose:
                    show(record)
                else:
                    log(
                        f"[{n}/{len(items)}] {record['id']} {record['category']}: {record['outcome']} ({record['decision']})"
                    )
            index_version = getattr(manager.retriever, "version", None)
        finally:
            database.dispose()
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)

    result = figures(records, resamples=args.resamples, seed=args.seed)
    checks = goal_checks(records, result)
    results: dict[str, Any] = {
        "command": "python benchmarks/natural_questions.py " + " ".join(sys.argv[1:]),
        "split": args.split,
        "questions": str(questions.relative_to(REPO)),
        "items": len(records),
        "limit": args.limit,
        "home": "temporary (demo data)" if temporary else str(home),
        "index_version": index_version,
        "dialogue": {
            "generate": settings.dialogue.generate,
            "max_rounds": settings.dialogue.max_rounds,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_prepare": round(prepared_s, 1),
        "decisions": dict(Counter(r["decision"] for r in records)),
        **result,
        "goal": GOAL,
        "goal_checks": checks,
        "goal_met": all(checks.values()),
        "records": records,
    }
    save_results(out, results)
    print(table(result))
    overall = result["overall"]
    print(
        f"\nright share {pct(overall['right_share'])}; wrong {pct(overall['outcomes']['wrong']['share'])}; "
        f"clarifications resolved {overall['clarifications']['resolved']}/{overall['clarifications']['count']}"
    )
    print(f"goal checks: {checks}; goal met: {results['goal_met']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
