"""Benchmark: the share of SENT replies that carry an identifier or a name foreign to the
conversation, on held-out conversations, through the real dialogue manager.

For each set (the bundled demo shop, and the real STC-3 helpdesk and IBM Twitter care
sets from ../shared/datasets when present) the set is imported into a fresh store and
indexed with the shipped MiniLM embedder; then every customer turn of every test-split
conversation is put to `DialogueManager.respond` in one live conversation per held-out
conversation, on the retrieval path (`generate=false`, so it runs in minutes on 2
cores). Two gates: `default` (the configured hand-off gate) and `always` (thresholds
at 0 and no out-of-scope hand-off: every turn answered, the worst case). Two variants:
`check_off` (the past answers as they were, unslotted, and no outgoing check: what the
product did before) and `check_on` (slotted answers, filled, and the outgoing check).

The detector used for MEASURING is independent of the serving check: in a sent reply,
  - a number or identifier: a token of at least 4 characters holding at least 3 digits
    (URLs and redaction placeholders left out; not a time, an ordinal or a number with
    a unit such as "1000M") that is not in this conversation's customer messages and
    appears in the agent turns of fewer than 3 training conversations;
  - a name: a word from a list of people's names learned from the training
    conversations (a capitalised word right after "Hi"/"Hello"/"Hey"/"Dear" at the
    start of an agent turn, or the sign-off line of a customer's message; never in
    lower case anywhere in the set), found ANYWHERE in the reply, that is not in this
    conversation's customer messages.
Figures are shares with 95% cluster-bootstrap intervals (conversations resampled).

    .venv/bin/python benchmarks/foreign_specifics.py [--sets demo,stc3_helpdesk_en,ibm_twitter_care]
        [--max-conversations N] [--boot 1000] [--home DIR]

Prints the figures and writes benchmarks/results/foreign_specifics.json. Goal: 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets" / "transcripts"
SETS = {
    "demo": (REPO / "data" / "demo_shop.jsonl", ["northwindgoods.example"]),
    "stc3_helpdesk_en": (DATASETS / "stc3_helpdesk_en.train.jsonl", []),
    "ibm_twitter_care": (DATASETS / "ibm_twitter_care.dev.jsonl", []),
}
URL_RE = re.compile(r"(?:https?:\s?//|www\.)\S+", re.IGNORECASE)
PLACEHOLDER_RE = re.compile(r"<[A-Z_]+>|\{\w+\}")
NUMBER_RE = re.compile(r"[A-Za-z0-9#$€£¥][A-Za-z0-9#.,:/*\-]*")
NOT_ID_RE = re.compile(
    r":|\d(?:am|pm)\b|^\d+(?:st|nd|rd|th)$|^\d+(?:\.\d+)?[a-z]{1,3}$", re.IGNORECASE
)
GREETED_RE = re.compile(r"^(?:<[A-Z_]+>\s*)*(?:Hi|Hello|Hey|Dear),?\s+([A-Z][a-z]{1,20})\b")
SIGNED_RE = re.compile(r"\n\s*([A-Z][a-z]{1,20})(?:\s+[A-Z][a-z]{1,20})?\s*(?:\n\s*<PHONE>\s*)?$")
CALENDAR = {
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "mr",
    "mrs",
    "ms",
    "miss",
    "dr",
    "sir",
    "madam",
}
WORD_RE = re.compile(r"[A-Za-z][a-z'’]+")
CAPITAL_RE = re.compile(r"\b[A-Z][a-z]{1,20}\b")
RARE = 3


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def _plain(text: str) -> str:
    return PLACEHOLDER_RE.sub(" ", URL_RE.sub(" ", text or ""))


def numbers_in(text: str) -> set[str]:
    out = set()
    for token in NUMBER_RE.findall(_plain(text)):
        token = token.rstrip(".,:/-*")
        if len(token) >= 4 and sum(c.isdigit() for c in token) >= 3 and not NOT_ID_RE.search(token):
            out.add(token)
    return out


def _squash(text: str) -> str:
    return re.sub(r"[\s\-#.,]", "", (text or "").lower())


class Detector:
    """The measuring detector (see the module docstring), built from the training conversations."""

    def __init__(self, conversations: list[list[tuple[str, str]]]):
        self.agent_numbers: Counter = Counter()
        self.names: set[str] = set()
        lower: set[str] = set()
        agent_words: Counter = Counter()
        for turns in conversations:
            agent_numbers = set()
            agent_words.update(
                {
                    w
                    for role, text in turns
                    if role == "agent"
                    for w in CAPITAL_RE.findall(_plain(text))
                }
            )
            for role, text in turns:
                lower.update(w for w in WORD_RE.findall(_plain(text)) if w.islower())
                if role == "agent":
                    agent_numbers |= {_squash(n) for n in numbers_in(text)}
                    self.names.update(GREETED_RE.findall((text or "").strip()))
                else:
                    self.names.update(SIGNED_RE.findall((text or "").strip()))
            self.agent_numbers.update(agent_numbers)
        # A word in the agents' turns of more than 1 conversation in 20 is the company's (a place, a brand).
        common = {w for w, n in agent_words.items() if n > max(RARE, len(conversations) / 20)}
        self.names = {
            n
            for n in self.names
            if n.lower() not in lower and n.lower() not in CALENDAR and n not in common
        }

    def foreign(self, reply: str, customer_texts: list[str]) -> list[str]:
        own = _squash(" ".join(customer_texts))
        own_words = {w.lower() for t in customer_texts for w in WORD_RE.findall(t or "")}
        found = []
        for number in sorted(numbers_in(reply)):
            key = _squash(number)
            if key and key not in own and self.agent_numbers[key] < RARE:
                found.append(number)
        for word in sorted(set(CAPITAL_RE.findall(_plain(reply)))):
            if word in self.names and word.lower() not in own_words:
                found.append(word)
        return found


class RawRetriever:
    """The retriever with every hit's reply as the agent wrote it (unslotted): what was sent before."""

    def __init__(self, retriever, targets: dict[int, str]):
        self.retriever, self.targets = retriever, targets

    def search(self, query, **kwargs):
        from dataclasses import replace

        result = self.retriever.search(query, **kwargs)
        hits = [
            replace(h, reply_text=self.targets.get(h.pair_id, h.reply_text)) for h in result.hits
        ]
        return replace(result, hits=hits)


def bootstrap(per_conversation: list[tuple[int, int]], boot: int, seed: int = 0) -> dict:
    """Share flagged/sent with a 95% cluster-bootstrap interval over conversations."""
    sent = sum(s for s, _ in per_conversation)
    flagged = sum(f for _, f in per_conversation)
    value = flagged / sent if sent else None
    rng = random.Random(seed)
    shares = []
    n = len(per_conversation)
    for _ in range(boot if n else 0):
        draw = [per_conversation[rng.randrange(n)] for _ in range(n)]
        s = sum(x for x, _ in draw)
        if s:
            shares.append(sum(f for _, f in draw) / s)
    shares.sort()
    low = shares[int(0.025 * (len(shares) - 1))] if shares else value
    high = shares[int(0.975 * (len(shares) - 1))] if shares else value
    return {
        "share": None if value is None else round(value, 4),
        "low": None if low is None else round(low, 4),
        "high": None if high is None else round(high, 4),
        "flagged": flagged,
        "sent": sent,
    }


def run_set(name: str, path: Path, allow: list[str], home: Path, args) -> dict:
    from sqlalchemy import select

    from chatbot.config import ensure_home
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.indexing.builder import update_index
    from chatbot.ingest.importer import import_paths
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.settings import load_settings
    from chatbot.store.conversations import conversation_messages
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.store.schema import Conversation, TrainingPair
    from chatbot.text.prompt import PromptFormat

    started = time.perf_counter()
    settings = load_settings(home=home / name)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    ingest = settings.ingest.model_copy(
        update={"redact_allowlist": [*settings.ingest.redact_allowlist, *allow]}
    )
    import_paths(database, [path], ingest=ingest)
    model = load_embedder(settings.paths)
    report = update_index(
        settings.paths, settings.retrieval, settings.dialogue, database, model=model
    )
    retriever = open_retriever(settings.paths, settings.retrieval, database, model=model)
    log(
        f"{name}: imported and indexed in {time.perf_counter() - started:.0f}s ({report.pair_count} pairs)"
    )
    with database.session() as session:
        train, test = [], []
        for conversation in session.scalars(
            select(Conversation).where(Conversation.channel == "import").order_by(Conversation.id)
        ):
            turns = [
                (m.role, m.text)
                for m in conversation_messages(session=session, conversation_id=conversation.id)
            ]
            (
                test
                if conversation.split == "test"
                else train
                if conversation.split == "train"
                else []
            ).append(turns)
        targets = dict(session.execute(select(TrainingPair.id, TrainingPair.target)).all())
    if args.max_conversations:
        test = test[: args.max_conversations]
    detector = Detector(train)
    prompt = PromptFormat.from_settings(settings.prompt)
    gates = {
        "default": {},
        "always": {
            "handoff_threshold": 0.0,
            "answer_threshold": 0.0,
            "handoff_on_out_of_scope": False,
        },
    }
    out = {
        "file": path.name,
        "held_out_conversations": len(test),
        "held_out_customer_turns": sum(1 for t in test for r, _ in t if r == "customer"),
        "gates": {},
    }
    for gate, overrides in gates.items():
        dialogue = settings.dialogue.model_copy(update={"generate": False, **overrides})
        out["gates"][gate] = {}
        for variant in ("check_off", "check_on"):
            t0 = time.perf_counter()
            raw = variant == "check_off"
            manager = DialogueManager(
                dialogue,
                database,
                RawRetriever(retriever, targets) if raw else retriever,
                None,
                prompt,
                ingest=ingest,
            )
            if raw:
                manager.specifics = None
            per_conversation, examples, withheld, turns = [], [], 0, 0
            for conversation in test:
                conversation_id, customer_texts, sent, flagged = None, [], 0, 0
                for role, text in conversation:
                    if role != "customer":
                        continue
                    turns += 1
                    try:
                        reply = manager.respond(text, conversation_id, source="benchmark")
                    except Exception as exc:
                        log(f"  {name}: {type(exc).__name__}: {exc}")
                        continue
                    conversation_id = reply.conversation_id
                    customer_texts.append(text)
                    withheld += sum(
                        1
                        for c in reply.to_dict()["candidates"]
                        if "another customer's" in str(c.get("blocked", ""))
                    )
                    if reply.conversation_id and reply.decision == "handoff":
                        manager.hand_back(conversation_id)  # keep answering the held-out turns
                    if not (reply.sent and reply.decision in ("answer", "answer_flagged")):
                        continue
                    sent += 1
                    foreign = detector.foreign(reply.shown_text, customer_texts)
                    if foreign:
                        flagged += 1
                        if len(examples) < 8:
                            # The shared sets' text is never committed: only what was flagged.
                            examples.append(
                                {
                                    "customer": text[:160],
                                    "sent": reply.shown_text[:240],
                                    "foreign": foreign,
                                }
                                if name == "demo"
                                else {"foreign": foreign}
                            )
                per_conversation.append((sent, flagged))
            figures = bootstrap(per_conversation, args.boot)
            figures.update(
                turns=turns,
                withheld_candidates=withheld,
                seconds=round(time.perf_counter() - t0, 1),
                examples=examples,
            )
            out["gates"][gate][variant] = figures
            log(
                f"  {name} {gate:8s} {variant}: {figures['flagged']}/{figures['sent']} sent replies foreign "
                f"= {figures['share']} [{figures['low']}, {figures['high']}] ({turns} turns, {figures['seconds']}s)"
            )
    database.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="demo,stc3_helpdesk_en,ibm_twitter_care")
    parser.add_argument(
        "--max-conversations", type=int, default=0, help="held-out conversations per set (0 = all)"
    )
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "foreign_specifics.json"
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="foreign-specifics-"))
    results = {
        "what": "share of sent replies carrying a number/ID or a name foreign to the conversation, held-out turns, "
        "retrieval path (generate=false); 95% cluster-bootstrap intervals over conversations",
        "command": "python benchmarks/foreign_specifics.py"
        + (f" --max-conversations {args.max_conversations}" if args.max_conversations else ""),
        "detector": f"numbers/IDs >= 4 chars with >= 3 digits (no times, ordinals, units) not in the customer's "
        f"messages and in agent turns of < {RARE} training conversations; people's names learned from the "
        "training conversations (greeted by agents, signed by customers; never lower-case) found anywhere "
        "in the reply and not in the customer's messages",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "sets": {},
        "skipped": {},
    }
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        path, allow = SETS[name]
        if not path.is_file():
            results["skipped"][name] = (
                f"{path} is absent (the shared datasets are not on this machine)"
            )
            log(f"{name}: skipped: {results['skipped'][name]}")
            continue
        results["sets"][name] = run_set(name, path, allow, home, args)
    save_results(args.out, results)
    print(
        json.dumps(
            {
                name: {
                    gate: {
                        v: {k: f[k] for k in ("share", "low", "high", "flagged", "sent")}
                        for v, f in g.items()
                    }
                    for gate, g in s["gates"].items()
                }
                for name, s in results["sets"].items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
