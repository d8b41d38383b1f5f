"""Multi-round refinement: draft, score, revise the best so far, keep the best, and stop
when a revision no longer beats the best by `min_improvement` (its score fell, or rose
too little: early stopping), when the best has nothing left to fix, when a revision is
degenerate (`degenerate` names why: it never becomes the best), or after `max_rounds`
revisions. Knows nothing of models or prompts: drafting, revising, scoring and the
degeneracy check come in as functions."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chatbot.dialogue.records import Candidate, Critique, Origin, RoundKind, RoundTrace


@dataclass
class Refinement:
    best: Candidate
    candidates: list[Candidate]
    trace: list[RoundTrace] = field(default_factory=list)
    stopped: str = ""  # why: "max_rounds", "no_improvement", "no_issues", "degenerate"


def refine(
    draft: Callable[[], str],
    revise: Callable[[Sequence[Candidate]], str],
    score: Callable[[str], Critique],
    *,
    max_rounds: int,
    min_improvement: float,
    on_round: Callable[[RoundTrace], None] | None = None,
    degenerate: Callable[[str], str | None] | None = None,
) -> Refinement:
    def step(
        round_: int, kind: RoundKind, produce: Callable[[], str]
    ) -> tuple[Candidate, RoundTrace]:
        started = time.perf_counter()
        text = produce().strip()
        critique = score(text)
        origin = Origin.DRAFT if kind == RoundKind.DRAFT else Origin.REVISION
        candidate = Candidate(text, origin, critique, round=round_)
        trace = RoundTrace(
            round_,
            kind,
            text,
            critique.score,
            critique.components,
            critique.issues,
            round(time.perf_counter() - started, 4),
        )
        return candidate, trace

    first, trace = step(0, RoundKind.DRAFT, draft)
    trace.kept = True
    result = Refinement(best=first, candidates=[first], trace=[trace], stopped="max_rounds")
    if on_round:
        on_round(trace)
    for round_ in range(1, max_rounds + 1):
        if not result.best.critique.issues:
            result.stopped = "no_issues"
            break
        candidate, trace = step(round_, RoundKind.REVISION, lambda: revise(list(result.candidates)))
        result.candidates.append(candidate)
        broken = degenerate(candidate.text) if degenerate is not None else None
        if broken is not None:
            trace.issues = [*trace.issues, f"degenerate: {broken}"]
            result.trace.append(trace)
            if on_round:
                on_round(trace)
            result.stopped = "degenerate"
            break
        improved = candidate.score > result.best.score + min_improvement
        if candidate.score > result.best.score:
            result.best = candidate
            trace.kept = True
        result.trace.append(trace)
        if on_round:
            on_round(trace)
        if not improved:
            result.stopped = "no_improvement"
            break
    return result
