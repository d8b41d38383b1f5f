"""Personal-data detection on hand-labelled support messages (`benchmarks/pii/messages.txt`):
precision and recall per type, with 95% bootstrap intervals (messages resampled), of

- `before`: redaction as it was at commit BEFORE_COMMIT (`chatbot/ingest/redact.py` read
  from git, run through its public `Redactor.redact`; what it replaced is recovered by
  aligning its output with the input);
- `redaction`: today's `Redactor` with its default kinds, measured the same way;
- `detector`: `chatbot.text.pii.Detector.find` with every recogniser (names and street
  addresses included, which redaction leaves to the slotting of shared answers).

A predicted span counts as right when it overlaps a labelled span of the same type; a
labelled span counts as found when a prediction of its type overlaps it. `any` ignores the
type (was the personal data touched at all). Every system gets the same allowlist (the
company's own e-mail domain, hotline and bank account): those are look-alikes, not data.

The messages are split in two by a hash of their text: `dev` (used while writing the
recognisers) and `test` (read for the report). Figures are printed and saved for both.

    .venv/bin/python benchmarks/pii_detection.py            # before + redaction + detector
    .venv/bin/python benchmarks/pii_detection.py --before   # only the old redaction ->
                                                            #   results/pii_detection_before.json
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.util
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402
from chatbot.evaluation.intervals import interval  # noqa: E402

MESSAGES = REPO / "benchmarks" / "pii" / "messages.txt"
BEFORE_COMMIT = "84a15b2"  # the last commit whose redact.py had only the four regex kinds
TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "ID", "ADDRESS", "NAME", "HANDLE")
ALLOWLIST = (
    "northwindgoods.example",
    "0800 917 4455",
    "GB29 NWBK 6016 1331 9268 19",
    "@NorthwindHelp",
)
RESAMPLES = 2000
MARK_RE = re.compile(r"\[\[([A-Z]+):(.+?)\]\](?!\])")
# Unique stand-ins for the placeholders while aligning: never in a message.
# (Private-use characters: nothing in a message aligns with them by chance.)
SENTINEL_RE = re.compile("\x00([\ue000-\ue0ff])\x01")


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Message:
    text: str
    spans: tuple[Span, ...]
    split: str


def parse(line: str) -> tuple[str, tuple[Span, ...]]:
    """A marked-up line -> the plain text and its labelled spans."""
    line = line.replace("\\n", "\n")
    text, spans, last = [], [], 0
    length = 0
    for m in MARK_RE.finditer(line):
        before = line[last : m.start()]
        text.append(before)
        length += len(before)
        kind, value = m.group(1), m.group(2)
        if kind not in TYPES:
            raise ValueError(f"unknown type {kind!r} in {line!r}")
        spans.append(Span(kind, length, length + len(value)))
        text.append(value)
        length += len(value)
        last = m.end()
    text.append(line[last:])
    return "".join(text), tuple(spans)


def load(path: Path = MESSAGES) -> list[Message]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, spans = parse(line)
        split = "dev" if hashlib.sha1(text.encode()).digest()[0] % 2 == 0 else "test"
        out.append(Message(text, spans, split))
    return out


# -- systems ---------------------------------------------------------------------------


def _module_at(commit: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:chatbot/ingest/redact.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="redact_before_"))
    path = folder / "redact_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("redact_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spans_of_redaction(original: str, redacted: str) -> list[Span]:
    """What a redactor replaced, from its output with sentinel placeholders."""
    out = []
    matcher = difflib.SequenceMatcher(None, original, redacted, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "insert"):
            for m in SENTINEL_RE.finditer(redacted[j1:j2]):
                kind = TYPES[ord(m.group(1)) - 0xE000]
                out.append(Span(kind, i1, max(i2, i1 + 1)))
    return out


def redaction_system(
    module: ModuleType, kinds: Sequence[str] | None = None
) -> Callable[[str], list[Span]]:
    """A redactor of `module` (redact.py of some version) as a span finder."""
    module.PLACEHOLDERS = {
        k: f"\x00{chr(0xE000 + TYPES.index(k.upper()))}\x01" for k in module.PLACEHOLDERS
    }
    redactor = module.Redactor(kinds if kinds is not None else module.ALL_KINDS, ALLOWLIST)

    def find(text: str) -> list[Span]:
        return spans_of_redaction(text, redactor.redact(text))

    return find


def detector_system() -> Callable[[str], list[Span]]:
    from chatbot.text.pii import Detector

    detector = Detector(allowlist=ALLOWLIST)

    def find(text: str) -> list[Span]:
        return [Span(f.kind.upper(), f.start, f.end) for f in detector.find(text)]

    return find


def default_redaction_system() -> Callable[[str], list[Span]]:
    import importlib

    module = importlib.import_module("chatbot.text.redact")
    kinds = module.DEFAULT_KINDS
    module = importlib.util.module_from_spec(importlib.util.find_spec("chatbot.text.redact"))  # type: ignore[arg-type]
    module.__spec__.loader.exec_module(module)  # type: ignore[union-attr]
    return redaction_system(module, kinds)


# -- scoring ---------------------------------------------------------------------------


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def counts(message: Message, predicted: list[Span]) -> dict[str, list[int]]:
    """Per type (and `ANY`): [true predictions, predictions, labelled spans found, labelled spans]."""
    out = {t: [0, 0, 0, 0] for t in (*TYPES, "ANY")}
    for p in predicted:
        kind = p.type if p.type in TYPES else "OTHER"
        if kind in out:
            out[kind][1] += 1
            out[kind][0] += any(g.type == p.type and _overlap(g, p) for g in message.spans)
        out["ANY"][1] += 1
        out["ANY"][0] += any(_overlap(g, p) for g in message.spans)
    for g in message.spans:
        out[g.type][3] += 1
        out[g.type][2] += any(p.type == g.type and _overlap(g, p) for p in predicted)
        out["ANY"][3] += 1
        out["ANY"][2] += any(_overlap(g, p) for p in predicted)
    return out


def figures(per_message: list[dict[str, list[int]]], seed: int = 0) -> dict[str, dict[str, object]]:
    """Precision and recall per type with 95% bootstrap intervals over messages."""
    keys = (*TYPES, "ANY")
    table = np.array([[m[k] for k in keys] for m in per_message], dtype=np.float64)  # n x K x 4
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_message), size=(RESAMPLES, len(per_message)))
    sums = table[draws].sum(axis=1)  # R x K x 4
    total = table.sum(axis=0)
    out: dict[str, dict[str, object]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, key in enumerate(keys):
            tp, pred, found, gold = total[i]
            precision = tp / pred if pred else None
            recall = found / gold if gold else None
            out[key.lower()] = {
                "labelled": int(gold),
                "predicted": int(pred),
                "precision": interval(precision, sums[:, i, 0] / sums[:, i, 1]),
                "recall": interval(recall, sums[:, i, 2] / sums[:, i, 3]),
            }
    return out


def measure(messages: list[Message], find: Callable[[str], list[Span]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for split in ("dev", "test", "all"):
        chosen = [m for m in messages if split == "all" or m.split == split]
        out[split] = figures([counts(m, find(m.text)) for m in chosen])
    return out


def _cell(f: dict[str, object] | None) -> str:
    if not f or f.get("value") is None:
        return "   -              "
    return f"{f['value']:.2f} [{f['low']:.2f}, {f['high']:.2f}]"


def show(name: str, result: dict[str, object], split: str) -> None:
    print(f"\n{name} ({split})")
    print(f"{'type':8} {'n':>4} {'precision':>19} {'recall':>19}")
    for key, f in result[split].items():  # type: ignore[union-attr]
        print(f"{key:8} {f['labelled']:>4} {_cell(f['precision']):>19} {_cell(f['recall']):>19}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", action="store_true", help="only the old redaction")
    parser.add_argument("--split", default="test", choices=("dev", "test", "all"), help="printed")
    args = parser.parse_args()
    messages = load()
    about = {
        "set": str(MESSAGES.relative_to(REPO)),
        "messages": {s: sum(m.split == s for m in messages) for s in ("dev", "test")},
        "labelled_spans": {
            s: sum(len(m.spans) for m in messages if m.split == s) for s in ("dev", "test")
        },
        "split": "by a hash of each message's text; recognisers were written looking at dev only",
        "match": "a prediction overlapping a labelled span of the same type (any: of any type)",
        "intervals": f"95% percentile bootstrap over messages, {RESAMPLES} resamples",
        "allowlist": list(ALLOWLIST),
        "before_commit": BEFORE_COMMIT,
    }
    systems: dict[str, Callable[[str], list[Span]]] = {
        "before": redaction_system(_module_at(BEFORE_COMMIT))
    }
    if not args.before:
        systems["redaction"] = default_redaction_system()
        systems["detector"] = detector_system()
    results = {name: measure(messages, find) for name, find in systems.items()}
    for name, result in results.items():
        show(name, result, args.split)
    path = (
        REPO
        / "benchmarks"
        / "results"
        / ("pii_detection_before.json" if args.before else "pii_detection.json")
    )
    save_results(path, {"about": about, **results})
    print(f"\nsaved {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
