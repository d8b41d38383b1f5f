"""Telling a company's constants from one customer's specifics, over the whole store.

A value found in agent replies (`chatbot.text.specifics`) that appears in at least
`min_conversations` distinct conversations (a help address, "4.95 EUR", a hotline
number) is a company constant and stays as it is in the slotted replies; one that
appears in fewer is one customer's (an order number, their bill) and becomes a slot.
People's names are never constants, however often a name recurs.

Besides the names `find_specifics` finds in one reply, the store as a whole names people
that one reply cannot tell from a word: a capitalised word right after a greeting at the
start of an agent turn with no punctuation after it ("Dear, Xiaomei has told you...",
"Hi Sarah thanks for waiting") is a person's name when the word is never written in
lower case anywhere in the store and the agents of at most one conversation in 20 write
it (more is a brand or a place: "Dear China Unicom user"). Such names only join the list
the outgoing check reads (a reply that mentions one is not sent unless the customer gave
it); they are not slotted, because where they stand in one reply is not known for sure.

`recompute` runs after each import (imports are incremental, so a value can become a
constant later): in ONE transaction it finds the pieces of pairs not yet looked at,
counts every value by conversation, rewrites the `known_values` table (constants and
the names of people met in the history) and every pair's `target_slotted` and `slots`
that changed. A crash leaves the previous state whole. Serving reads the result through
`chatbot.dialogue.specifics`; this module decides nothing at reply time.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.text.specifics import (
    NAME_KINDS,
    NOT_NAMES,
    Found,
    find_specifics,
    slot_summary,
    slotted,
    value_key,
)

if TYPE_CHECKING:
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

# A capitalised word after a greeting that opens an agent turn (after any @handles).
LOOSE_GREETING_RE = re.compile(
    r"^(?:@\w+\s+)*(?:Hi|Hello|Hey|Dear)\b,?[ \t]+(?P<name>[A-Z][a-z]{1,20})\b(?![\-'’])"
)
WORD_RE = re.compile(r"[A-Za-z]+")


@dataclass
class ConstantsReport:
    pairs: int = 0
    newly_scanned: int = 0
    updated: int = 0
    constants: int = 0
    names: int = 0
    slotted_pairs: int = 0


def _context_texts(context: list[object] | None) -> list[str]:
    return [str(t.get("text", "")) for t in (context or []) if isinstance(t, dict)]


def greeted_names(
    turns: list[tuple[int | str, str]], all_texts: list[str]
) -> dict[str, set[int | str]]:
    """Names greeted at the start of agent turns (`turns`: where each came from, its text)
    that are never written in lower case in `all_texts` and that the agents of at most one
    conversation in 20 write: lower-case name -> where greeted."""
    candidates: dict[str, set[int | str]] = defaultdict(set)
    for where, text in turns:
        m = LOOSE_GREETING_RE.match((text or "").lstrip())
        if m and m.group("name").lower() not in NOT_NAMES:
            candidates[m.group("name").lower()].add(where)
    if not candidates:
        return {}
    lower = {w for text in all_texts for w in WORD_RE.findall(text or "") if w.islower()}
    written_in: dict[str, set[int | str]] = defaultdict(set)
    for where, text in turns:
        for word in WORD_RE.findall(text or ""):
            if word.lower() in candidates and word[0].isupper():
                written_in[word.lower()].add(where)
    most = max(1.0, len({where for where, _ in turns}) / 20)
    return {
        name: where
        for name, where in candidates.items()
        if name not in lower and len(written_in[name]) <= most
    }


def recompute(database: Database, *, min_conversations: int = 3) -> ConstantsReport:
    """Recount constants and re-slot every pair, in one transaction (see the module docstring)."""
    from sqlalchemy import delete, insert, select, update

    from chatbot.store.schema import KnownValue, TrainingPair, utcnow

    report = ConstantsReport()
    with database.session() as session:
        rows = session.execute(
            select(
                TrainingPair.id,
                TrainingPair.conversation_id,
                TrainingPair.target,
                TrainingPair.context,
                TrainingPair.slots,
                TrainingPair.target_slotted,
            ).order_by(TrainingPair.id)
        ).all()
        found_by_pair: dict[int, list[Found]] = {}
        seen: dict[tuple[str, str], set[int | str]] = defaultdict(set)
        shown: dict[tuple[str, str], str] = {}
        for pair_id, conversation_id, target, context, slots, _ in rows:
            if slots is None:
                found = find_specifics(target or "", _context_texts(context))
                report.newly_scanned += 1
            else:
                found = [Found.from_dict(item) for item in slots]
            found_by_pair[pair_id] = found
            where = conversation_id if conversation_id is not None else f"pair:{pair_id}"
            for f in found:
                key = (f.kind, value_key(f.kind, f.value))
                seen[key].add(where)
                shown.setdefault(key, f.value)
        loose = greeted_names(
            [
                (
                    conversation_id if conversation_id is not None else f"pair:{pair_id}",
                    target or "",
                )
                for pair_id, conversation_id, target, *_ in rows
            ],
            [target or "" for _, _, target, *_ in rows]
            + [text for *_, context, _, _ in rows for text in _context_texts(context)],
        )
        for name, where in loose.items():
            if not any((kind, name) in seen for kind in NAME_KINDS):
                seen[("customer_name", name)] |= where
        constants = {
            key
            for key, where in seen.items()
            if key[0] not in NAME_KINDS and len(where) >= min_conversations
        }
        changes = []
        for pair_id, _, target, _, slots, old_slotted in rows:
            found = found_by_pair[pair_id]
            new_slots = slot_summary(found, constants)
            new_slotted = slotted(target or "", found, constants)
            if new_slotted != (target or ""):
                report.slotted_pairs += 1
            if slots != new_slots or old_slotted != new_slotted:
                changes.append({"id": pair_id, "slots": new_slots, "target_slotted": new_slotted})
        for start in range(0, len(changes), 500):
            session.execute(update(TrainingPair), changes[start : start + 500])
        session.execute(delete(KnownValue))
        now = utcnow()
        known = [
            {
                "kind": kind,
                "value": key[:300],
                "conversations": len(seen[(kind, key)]),
                "constant": True,
                "updated_at": now,
            }
            for kind, key in sorted(constants)
        ] + [
            {
                "kind": kind,
                "value": key[:300],
                "conversations": len(where),
                "constant": False,
                "updated_at": now,
            }
            for (kind, key), where in sorted(seen.items())
            if kind in NAME_KINDS
        ]
        for start in range(0, len(known), 500):
            session.execute(insert(KnownValue), known[start : start + 500])
        report.pairs, report.updated = len(rows), len(changes)
        report.constants = len(constants)
        report.names = sum(1 for k in seen if k[0] in NAME_KINDS)
    log.info(
        "constants: %d pairs (%d newly scanned, %d updated), %d constants, %d names",
        report.pairs,
        report.newly_scanned,
        report.updated,
        report.constants,
        report.names,
    )
    return report


def needs_recompute(database: Database) -> bool:
    """Some pair has not been looked at yet (imported before this existed, or added by an agent)."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        return (
            session.scalar(select(TrainingPair.id).where(TrainingPair.slots.is_(None)).limit(1))
            is not None
        )
