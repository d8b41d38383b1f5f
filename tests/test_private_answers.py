"""An agent's text becomes a shared answer only in its slotted form, and one holding
personal data slotting cannot hide stays private to its conversation until an admin
approves it (`chatbot.support.sharing`, `chatbot.support.review`, the admin console's
held answers). The attack: an agent's edit holding a customer's IBAN must never reach
the next customer who asks the same question, the index's pairs file or training."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from chatbot.errors import InputError
from chatbot.retrieval.index_files import record_to_row
from chatbot.retrieval.stored_pairs import load_pairs
from chatbot.store.schema import TrainingPair
from chatbot.store.support_schema import PrivateAnswer
from chatbot.support import review, sharing
from chatbot.text.redact import Redactor
from chatbot.ui.admin_held import decide_held, held_frame
from tests.test_agent_review import actions, agents, conversation, messages_of  # noqa: F401
from tests.test_dialogue_support import make_manager, shop  # noqa: F401

QUESTION = "Could the money go back to a different bank account? I'd like to talk to a person."
IBAN = "DE89 3704 0044 0532 0130 00"
ANSWER = f"Hi, we have sent the refund to the bank account {IBAN} that you gave us."
COMPANY_IBAN = "GB29 NWBK 6016 1331 9268 19"


def leaks(text: object) -> bool:
    flat = json.dumps(text, default=str).replace(" ", "")
    return IBAN.replace(" ", "") in flat


def stored_pairs(database) -> list[TrainingPair]:
    with database.session() as session:
        return list(session.scalars(select(TrainingPair)))


def held_rows(database) -> list[PrivateAnswer]:
    with database.session() as session:
        return list(session.scalars(select(PrivateAnswer).order_by(PrivateAnswer.id)))


@pytest.fixture
def iban_edit(shop, agents):
    """The attack's first half: a customer asks for a person, the agent answers with an IBAN."""
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = make_manager(settings, database, retriever, max_rounds=0)
    first = manager.respond(QUESTION)
    result = review.edit(database, first.id, alice, ANSWER, redactor=manager.redactor)
    if conversation(database, first.conversation_id).state == "handed_off":
        review.hand_back(database, first.conversation_id, alice)
    return first, result


def test_an_agents_iban_never_reaches_another_customer_the_index_or_training(shop, iban_edit):
    settings, database, retriever, _ = shop
    first, result = iban_edit
    # The customer of that conversation got exactly what the agent sent.
    assert messages_of(database, first.conversation_id)[-1] == ("agent", ANSWER)
    # It is held, not shared; the agent is told why; the audit copy is redacted.
    assert result.pair_id is None and result.held_id is not None
    assert "private to this conversation" in result.message and "iban" in result.message
    assert not leaks(actions(database, first.conversation_id)[-1].text)
    # The next customers asking the same question never get it.
    for question in (QUESTION, "could the money go back to a different bank account?"):
        served = make_manager(settings, database, retriever, max_rounds=0).respond(question)
        assert served.reason != "cache_hit"
        assert not leaks([served.text, served.shown_text])
        assert not leaks([c.text for c in served.candidates])
        assert not leaks([c.snippet for c in served.citations])
        assert not leaks(messages_of(database, served.conversation_id))
    # No training pair (what training reads), no line of the index's pairs file holds it.
    assert not leaks([(p.target, p.target_slotted, p.context) for p in stored_pairs(database)])
    splits = ["train", "val", "test"]
    assert not leaks([record_to_row(r) for r in load_pairs(database, splits)])


def test_an_admin_approves_or_discards_a_held_answer(shop, iban_edit, agents):
    settings, database, retriever, _ = shop
    first, result = iban_edit
    frame = held_frame(database)
    assert list(frame["id"]) == [result.held_id]
    assert frame.iloc[0]["personal data"] == "iban" and frame.iloc[0]["answer"] == ANSWER
    assert frame.iloc[0]["question"] == QUESTION

    # Approved (the admin judged it harmless): shared now, as a slotted pair.
    said = decide_held(database, str(result.held_id), True, "root")
    assert said.startswith(f"Held answer {result.held_id} approved")
    held = held_rows(database)[0]
    assert (held.state, held.decided_by) == ("approved", "root") and held.pair_id is not None
    pair = next(p for p in stored_pairs(database) if p.id == held.pair_id)
    assert (pair.origin, pair.target, pair.split) == ("agent_edited", ANSWER, "train")
    assert pair.target_slotted is not None and pair.labels["approved_by"] == "root"
    assert held_frame(database).empty
    # Decided once.
    assert "already approved" in decide_held(database, str(result.held_id), False, "root")
    assert "Type the id" in decide_held(database, "abc", True, "root")
    assert "does not exist" in decide_held(database, "999", True, "root")
    assert "does not exist" in decide_held(database, "9" * 30, True, "root")

    # A second one, discarded: never shared, its text cleared.
    alice, _ = agents
    manager = make_manager(settings, database, retriever, max_rounds=0)
    second = manager.respond(QUESTION)
    other = review.edit(database, second.id, alice, ANSWER + " Thanks!", redactor=manager.redactor)
    assert other.held_id is not None
    before = len(stored_pairs(database))
    assert "discarded" in decide_held(database, str(other.held_id), False, "root")
    row = held_rows(database)[-1]
    assert (row.state, row.text, row.context) == ("discarded", None, [])
    assert len(stored_pairs(database)) == before
    with pytest.raises(InputError, match="already discarded"):
        sharing.approve(database, other.held_id, "root")


def test_slotted_answers_are_shared_at_once_and_company_constants_do_not_hold_one(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = make_manager(settings, database, retriever, max_rounds=0)
    first = manager.respond(
        "Hi, I'm Samira. Was my refund for NW-551023 sent? Let me talk to a person."
    )
    answer = "Hi Samira, the refund for NW-551023 was sent today."
    result = review.edit(database, first.id, alice, answer, redactor=manager.redactor)
    assert result.held_id is None and result.pair_id is not None
    pair = next(p for p in stored_pairs(database) if p.id == result.pair_id)
    assert pair.target == answer
    assert (
        pair.target_slotted == "Hi {customer_name}, the refund for {order_number} was sent today."
    )
    # The index's reply (what a citation shows) is the slotted one.
    row = record_to_row(load_pairs(database, ["train"], only_ids=[pair.id])[0])
    assert row["reply"] == pair.target_slotted

    # The company's own bank account (on the allowlist) is no personal data.
    company = Redactor(allowlist=[COMPANY_IBAN])
    second = manager.respond("How do I pay by bank transfer? I want a person please.")
    paid = f"Please transfer the amount to our account {COMPANY_IBAN}, quoting your order number."
    shared = review.edit(database, second.id, alice, paid, redactor=company)
    assert shared.held_id is None and shared.pair_id is not None
    # Without the allowlist the same answer would be held.
    third = manager.respond("How do I pay by bank transfer? I want a person please.")
    assert review.edit(database, third.id, alice, paid, redactor=Redactor()).held_id is not None
