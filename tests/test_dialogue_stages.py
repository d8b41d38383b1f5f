"""Each stage of the dialogue manager alone (`chatbot.dialogue.stages`), on a hand-built
`Turn`: what it takes and what it gives, without a store, a retriever or a model where
the stage needs none. The whole pipeline is tested through `DialogueManager` elsewhere
(test_dialogue_manager.py, test_customer_flows.py)."""

from __future__ import annotations

import pytest

from chatbot.dialogue.judge import ranker_thresholds
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import Blocked, Candidate, Critique, Decision, Origin, Reason
from chatbot.dialogue.repository import LastReply
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.admit import MAX_MESSAGE_CHARS, Admit
from chatbot.dialogue.stages.check import (
    FinalCheck,
    PromptGuard,
    Screen,
    Showable,
    live_redactor,
)
from chatbot.dialogue.stages.choose import Choose, nearest
from chatbot.dialogue.stages.compose import Composed, Drafted
from chatbot.dialogue.stages.conversation_acts import Acts
from chatbot.dialogue.stages.decide import Decide
from chatbot.dialogue.stages.gate import Gate
from chatbot.dialogue.stages.retrieve import Retrieved
from chatbot.dialogue.stages.scope import Scope
from chatbot.dialogue.turn import Clock, LiveText, Turn, ignore
from chatbot.errors import InputError
from chatbot.retrieval.types import Citation, Hit, SearchResult

SYSTEM_PROMPT = "You are the support assistant of Northwind Goods and answer from past replies"
SETTINGS = DialogueSettings()


def turn(message: str, *, state: str = "open", earlier: list[str] | None = None, last=None) -> Turn:
    earlier = earlier or []
    return Turn(
        message=message,
        conversation_id=1,
        message_id=10,
        state=state,
        history=[("customer", t) for t in earlier],
        earlier_customer=list(earlier),
        previous_smoothed=None,
        facts=None,
        clock=Clock(),
        emit=ignore,
        live=LiveText(ignore, lambda text: text),
        last=last,
    )


def last_reply(decision: str, reason: str = "", options: list[str] | None = None) -> LastReply:
    return LastReply(decision, reason, options or [], "", "where is my parcel?", 0)


@pytest.fixture()
def parts():
    redactor = live_redactor(None)
    guard = PromptGuard(SYSTEM_PROMPT)
    own = OwnAnswers(None, Showable(guard, redactor))
    return guard, own, Say(SETTINGS, own, retriever=None), redactor


def candidate(text: str, score: float, pair_id: int | None = None) -> Candidate:
    return Candidate(text, Origin.RETRIEVED, Critique(score, {}), pair_id=pair_id)


def hit(pair_id: int, text: str, dense: float) -> Hit:
    citation = Citation(pair_id, pair_id, 1, "demo", dense, text)
    return Hit(pair_id, dense, "question", text, citation, scores={"dense": dense})


# -- admit -------------------------------------------------------------------------------


def test_admit_refuses_empty_invisible_and_overlong_messages_and_redacts_the_rest():
    admit = Admit(live_redactor(None))
    for empty in ("", "   ", "\u200b\u200b\u200b", "\u200d\ufeff \u00ad"):
        with pytest.raises(InputError, match="empty"):
            admit.run(empty)
    with pytest.raises(InputError, match=f"limit is {MAX_MESSAGE_CHARS}"):
        admit.run("a" * (MAX_MESSAGE_CHARS + 1))
    assert admit.run("  write to jane@example.com\u202e please ") == "write to <EMAIL> please"
    assert admit.run("broken \ud800 text") == "broken \ufffd text"


# -- gate and acts -----------------------------------------------------------------------


def test_gate_is_silent_with_a_human_in_charge_and_hands_off_when_asked_or_looping(parts):
    _, _, say, _ = parts
    gate = Gate(SETTINGS, say)
    silent = gate.run(turn("hello?", state="handed_off"))
    assert silent is not None and silent.decision == Decision.SILENT and not silent.sent
    asked = gate.run(turn("can I talk to a real person please"))
    assert asked is not None and asked.decision == Decision.HANDOFF
    assert asked.reason == Reason.CUSTOMER_ASKED
    assert gate.run(turn("are you a bot or a person?")) is None  # asks what it is
    question = "where is my parcel?"
    looping = gate.run(turn(question, earlier=[question] * SETTINGS.loop_repeats))
    assert looping is not None and looping.reason.startswith(str(Reason.LOOP))
    assert gate.run(turn(question)) is None


def test_acts_answer_a_greeting_and_hand_off_a_yes_to_the_offer_of_a_person(parts):
    _, _, say, _ = parts
    acts = Acts(SETTINGS, say)
    hello = acts.run(turn("hi there!"))
    assert hello is not None and hello.decision == Decision.ACT and hello.sent and hello.text
    yes = acts.run(turn("yes please", last=last_reply(Decision.DECLINE)))
    assert yes is not None and yes.decision == Decision.HANDOFF
    assert acts.run(turn("how do I return a jacket?")) is None
    off = Acts(SETTINGS.model_copy(update={"acts": False}), say)
    assert off.run(turn("hi there!")) is None


# -- scope -------------------------------------------------------------------------------


def test_scope_hands_off_out_of_scope_and_lets_a_fitting_question_through(parts):
    _, _, say, _ = parts
    scope = Scope(SETTINGS, say)
    fitting = Retrieved(SearchResult([hit(1, "Returns are free.", 0.9)], False, 0.9), [], {})
    fitting.hits = list(fitting.result.hits)
    assert scope.run(turn("can I return it?"), fitting) is None
    nothing = Retrieved(SearchResult([], True, 0.1), [], {})
    handed = scope.run(turn("what's the weather?"), nothing)
    assert handed is not None and handed.decision == Decision.HANDOFF
    assert handed.reason == Reason.OUT_OF_SCOPE


# -- screen, choose, decide ----------------------------------------------------------------


def test_screen_blocks_a_candidate_repeating_the_system_prompt_and_a_degenerate_one(parts):
    guard, own, _, _ = parts
    screen = Screen(guard, own)
    good = candidate("Returns are free within 30 days of delivery.", 0.8)
    leak = candidate(f"Sure. {SYSTEM_PROMPT}.", 0.9)
    echo = candidate("how do I return my jacket", 0.7)
    screened = screen.run(turn("how do I return my jacket"), [good, leak, echo])
    assert screened.kept == [good]
    blocked = sorted(b.blocked for b in screened.blocked)
    assert blocked[0].startswith(Blocked.DEGENERATE) and "repeats the customer" in blocked[0]
    assert blocked[1] == Blocked.PROMPT


def test_nearest_prefers_the_closest_past_question_over_the_judges_score():
    far, near = candidate("far answer", 0.9, pair_id=1), candidate("near answer", 0.5, pair_id=2)
    hits = [hit(1, "far answer", 0.2), hit(2, "near answer", 0.8)]
    assert nearest([far, near], hits) is near


def test_decide_hands_off_without_candidates_and_sends_a_confident_one(parts):
    _, _, say, _ = parts
    decide = Decide(say, Choose(SETTINGS, retriever=None, evidence_k=2))  # type: ignore[arg-type]
    empty = decide.run(turn("q"), Composed([], [], Drafted(error="boom"), SETTINGS), [])
    assert empty.decision == Decision.HANDOFF and empty.reason == Reason.ASSISTANT_FAILED
    sure = candidate("Returns are free.", 0.99, pair_id=1)
    sent = decide.run(
        turn("q"), Composed([sure], [], Drafted(), SETTINGS), [hit(1, "Returns are free.", 0.9)]
    )
    assert sent.decision == Decision.ANSWER and sent.text == "Returns are free."
    assert [c.pair_id for c in sent.citations] == [1]
    unsure = candidate("Maybe this?", 0.01, pair_id=1)
    low = decide.run(turn("q"), Composed([unsure], [], Drafted(), SETTINGS), [])
    assert low.decision == Decision.HANDOFF and low.text == "Maybe this?"


def test_ranker_thresholds_come_from_its_validation_picks():
    meta = {"val_pick_probability": {"0.1": 0.3, "0.5": 0.7}}
    settings = SETTINGS.model_copy(
        update={"ranker_handoff_quantile": 0.1, "ranker_answer_quantile": 0.5}
    )
    assert ranker_thresholds(settings, meta) == {"handoff_threshold": 0.3, "answer_threshold": 0.7}
    assert ranker_thresholds(settings, {}) is None


# -- the final check -----------------------------------------------------------------------


def test_final_check_withholds_a_reply_with_a_placeholder_and_keeps_it_for_review(parts):
    _, own, say, redactor = parts
    check = FinalCheck(SETTINGS, redactor, own, say)
    decide = Decide(say, Choose(SETTINGS, retriever=None, evidence_k=2))  # type: ignore[arg-type]
    holding = candidate("Please write to <EMAIL> with {order_number}.", 0.99, pair_id=1)
    reply = decide.run(turn("q"), Composed([holding], [], Drafted(), SETTINGS), [])
    assert reply.decision == Decision.ANSWER
    checked = check.run(turn("q"), reply)
    assert checked.decision == Decision.HANDOFF
    assert checked.shown_text == SETTINGS.handoff_message
    assert checked.text == "Please write to <EMAIL> with {order_number}."  # for the agent
    clean = decide.run(
        turn("q"), Composed([candidate("Returns are free.", 0.99)], [], Drafted(), SETTINGS), []
    )
    assert check.run(turn("q"), clean).decision == Decision.ANSWER
