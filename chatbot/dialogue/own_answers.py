"""Past answers as this customer may get them: every candidate, cached, retrieved (in
its slotted form) or drafted, has its slots filled from this conversation, and one that
holds another customer's specifics, or tells of another customer's case (an order state
this conversation has not established, an action on an order it has not named), is
withheld with why (`chatbot.dialogue.specifics`, `chatbot.dialogue.case`).

Filtering and filling only: which answers exist is retrieval's and the cache's job, which
one is sent the decide stage's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from chatbot.dialogue import repository as repo
from chatbot.dialogue.case import Case, claimed_states, promises_action
from chatbot.dialogue.records import Blocked, BlockedCandidate, Candidate, Origin
from chatbot.dialogue.specifics import (
    Checked,
    ConversationFacts,
    SpecificsGuard,
    reports_on_a_case,
)
from chatbot.retrieval.types import Hit

SNIPPET_CHARS = 300
# Slots that tie a past reply to one customer's case (`not_usable`). Names are not among them,
# nor amounts and dates: in a small history a price or a deadline may look like one case's.
CASE_SLOTS = repo.CASE_IDENTIFIERS | {"address"}


def snippet(text: str) -> str:
    """The start of a reply as a citation shows it."""
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def withheld(
    origin: Origin,
    pair_id: int | None,
    text: str,
    why: str,
    round: int | None = None,
    score: float | None = None,
) -> BlockedCandidate:
    """A candidate withheld for holding another customer's specifics, with why."""
    return BlockedCandidate(origin, round, pair_id, Blocked.SPECIFICS, why, text, score)


def not_usable(checked: Checked) -> str | None:
    """Why a filled candidate must not be sent: it holds another customer's specifics,
    or it was about one customer's case (it named their order, parcel, ticket or
    address) and this customer gave none to put in its place: phrased without
    it ("your order has already been dispatched") it would tell this customer about
    someone else's order. A name phrased out ("Hi,") changes nothing of the sort."""
    if not checked.ok:
        return checked.why
    case = sorted({slot for slot in checked.unfilled if slot in CASE_SLOTS})
    if case:
        return f"about another customer's case ({', '.join(case)} not given in this conversation)"
    return None


def case_allows_text(text: str, case: Case | None) -> bool:
    """Every order state the text asserts is the one this conversation established,
    and, while no order is named, it promises no action on one."""
    if case is not None:
        return case.allows(text)
    return not claimed_states(text) and not promises_action(text)


def filled_hit(hit: Hit, text: str) -> Hit:
    """The hit as this customer may see it: its reply, and the snippet its citation shows
    under the reply (the widget's Sources), filled for them, never the past customer's."""
    return replace(hit, reply_text=text, citation=replace(hit.citation, snippet=snippet(text)))


class OwnAnswers:
    """Fills and screens answers for one conversation's facts. `specifics` None: no
    check beyond the case rules (for before/after benchmarks); `showable` is the last
    word on what text may be shown at all (`chatbot.dialogue.stages.check.Showable`)."""

    def __init__(self, specifics: SpecificsGuard | None, showable: Callable[[str], str | None]):
        self.specifics = specifics
        self.showable = showable

    def filled(self, text: str, facts: ConversationFacts | None) -> str:
        """Text from the company's history with its slots filled from this conversation
        (a name it does not know is phrased out: "Hi {customer_name}," becomes "Hi,")."""
        if self.specifics is None or facts is None:
            return text
        checked = self.specifics.prepare(text, facts)
        return checked.text if checked.ok else text

    def showable_for(self, text: str, facts: ConversationFacts | None) -> str | None:
        """`showable` for text with its slots filled; None when it holds another customer's specifics."""
        if self.specifics is not None and facts is not None:
            checked = self.specifics.prepare(text, facts)
            if not_usable(checked) is not None:
                return None
            text = checked.text
        return self.showable(text)

    def case_allows(self, hit: Hit, case: Case | None, held: list[BlockedCandidate]) -> bool:
        """A past answer may be sent only if every order state it asserts is the one this
        conversation established, and, while no order is named, it promises no action on one."""
        text = hit.reply_text
        if case_allows_text(text, case):
            return True
        why = (
            "asserts an order state this conversation has not established"
            if claimed_states(text)
            else "promises an action on an order this conversation has not named"
        )
        held.append(
            withheld(
                Origin.RETRIEVED,
                hit.pair_id,
                text,
                f"about another customer's case ({why})",
                score=hit.score,
            )
        )
        return False

    def hit(
        self,
        cached: tuple[Hit, float] | None,
        facts: ConversationFacts | None,
        held: list[BlockedCandidate],
    ) -> tuple[Hit, float] | None:
        """An approved answer from the cache, slotted and filled for this customer, or None when it cannot be."""
        if cached is None or self.specifics is None or facts is None:
            return cached
        hit, similarity = cached
        checked = self.specifics.prepare(self.specifics.slot(hit.reply_text, facts.known), facts)
        if (why := not_usable(checked)) is not None:
            held.append(withheld(Origin.CACHE, hit.pair_id, hit.reply_text, why))
            return None
        return filled_hit(hit, checked.text), similarity

    def hits(
        self,
        hits: list[Hit],
        infos: dict[int, repo.PairInfo],
        facts: ConversationFacts | None,
        held: list[BlockedCandidate],
        case: Case | None = None,
    ) -> list[Hit]:
        """Retrieved past answers as their slotted form (the store's; slotted now when it has
        none yet) filled for this customer; those still holding someone else's specifics are withheld."""
        if self.specifics is None or facts is None:
            return [h for h in hits if self.case_allows(h, case, held)]
        kept = []
        for hit in hits:
            info = infos.get(hit.pair_id)
            slotted = (
                info.reply_slotted if info is not None and info.reply_slotted is not None else None
            )
            checked = self.specifics.prepare(
                slotted
                if slotted is not None
                else self.specifics.slot(hit.reply_text, facts.known),
                facts,
            )
            if (why := not_usable(checked)) is None:
                kept.append(filled_hit(hit, checked.text))
            else:
                held.append(
                    withheld(Origin.RETRIEVED, hit.pair_id, hit.reply_text, why, score=hit.score)
                )
        # A reply to a customer who had named their order, reporting on it ("the parcel is
        # already on its way; I've asked the carrier..."), is about that order: never told
        # to a customer who named none.
        if not any(kind in facts.values for kind in repo.CASE_IDENTIFIERS):
            about_a_case = [
                h
                for h in kept
                if h.pair_id in infos
                and infos[h.pair_id].case_bound
                and reports_on_a_case(h.reply_text)
            ]
            for hit in about_a_case:
                held.append(
                    withheld(
                        Origin.RETRIEVED,
                        hit.pair_id,
                        hit.reply_text,
                        "about another customer's case (it reports on the order they named)",
                        score=hit.score,
                    )
                )
            kept = [h for h in kept if h not in about_a_case]
        return [h for h in kept if self.case_allows(h, case, held)]

    def candidates(
        self,
        candidates: list[Candidate],
        facts: ConversationFacts | None,
        held: list[BlockedCandidate],
    ) -> list[Candidate]:
        """The last check before anything is chosen, whatever wrote the candidate: slots
        filled, and any candidate holding another customer's specifics withheld."""
        if self.specifics is None or facts is None:
            return candidates
        kept = []
        for candidate in candidates:
            checked = self.specifics.prepare(candidate.text, facts)
            if (why := not_usable(checked)) is None:
                candidate.text = checked.text
                kept.append(candidate)
            else:
                held.append(
                    withheld(
                        candidate.origin,
                        candidate.pair_id,
                        candidate.text,
                        why,
                        candidate.round,
                        candidate.score,
                    )
                )
        return kept
