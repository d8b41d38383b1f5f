"""Never another customer's specifics: finding them in agent replies at import, telling
company constants from one customer's values by how many conversations hold them, the
slotted pairs in a real SQLite store, filling slots or phrasing replies without them,
the check on the way out, and the bundled demo shop answered through the real dialogue
manager (retrieval path) without another customer's order number or name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from chatbot.dialogue.specifics import SpecificsGuard, reports_on_a_case
from chatbot.ingest.constants import recompute
from chatbot.ingest.importer import import_paths
from chatbot.ingest.settings import IngestSettings
from chatbot.store.schema import KnownValue, TrainingPair
from chatbot.text.specifics import customer_names, find_specifics, slotted

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo_shop.jsonl"


def kinds(text, context=()):
    return [(f.kind, f.value) for f in find_specifics(text, context)]


# -- detection ----------------------------------------------------------------------------


def test_a_shop_reply_gives_up_its_customers_name_order_number_and_new_address():
    context = [
        "Hi,\n\nI typed the wrong house number, it should be 65 Mill Close. Order NW-934955.\n\nThanks,\nYusuf Fischer\n<PHONE>"
    ]
    reply = (
        "Hi Yusuf,\n\nGood news: NW-934955 is still Processing, so I've changed the delivery address to 65 Mill Close. "
        "You'll get an updated confirmation by e-mail.\n\nKind regards,\nNorthwind Goods Customer Care"
    )
    assert kinds(reply, context) == [
        ("customer_name", "Yusuf"),
        ("order_number", "NW-934955"),
        ("address", "65 Mill Close"),
    ]
    assert customer_names(context) >= {"Yusuf Fischer", "Yusuf"}
    assert slotted(reply, find_specifics(reply, context)).startswith(
        "Hi {customer_name},\n\nGood news: {order_number} is still Processing, so I've changed the delivery address to {address}."
    )
    # The company's sign-off is no person's name.
    assert "Northwind Goods Customer Care" in slotted(reply, find_specifics(reply, context))


@pytest.mark.parametrize(
    "reply, expected",
    [
        (
            "Thanks for reaching out, Niko. Standard delivery takes 3-5 working days.",
            [("customer_name", "Niko")],
        ),
        (
            "Hello Niko! Payments are usually declined by the bank, not by us.",
            [("customer_name", "Niko")],
        ),
        (
            "Thanks, Emma! Your refund of 24.90 EUR was issued on 12 March.",
            [("customer_name", "Emma"), ("amount", "24.90 EUR"), ("date", "12 March")],
        ),
        (
            "<HANDLE> Hi Morgan, thanks for sharing the details. ^LS",
            [("customer_name", "Morgan"), ("agent_name", "LS")],
        ),
        (
            "<HANDLE> You can visit our website to get assistance: https://example.com/help/12345678 -Angie",
            [("agent_name", "Angie")],
        ),
        (
            "Hi there! Your tracking number is 1Z999AA10123456784.",
            [("tracking_number", "1Z999AA10123456784")],
        ),
        ("We've opened ticket #4417 for you.", [("ticket_number", "#4417")]),
        (
            "Hello, we find the two expenses you mention: RMB 22.8, 207.82 and 204.75.",
            [("amount", "RMB 22.8"), ("amount", "207.82"), ("amount", "204.75")],
        ),
        ("Is your phone number 186****7650?", [("phone", "186****7650")]),
        (
            "Hi! I'm Anna from the returns team. Kind regards,\nAnna",
            [("agent_name", "Anna"), ("agent_name", "Anna")],
        ),
        # Nothing of one customer: product sizes, times, a year-free duration, a greeting without a name.
        (
            "Hi there! Express orders placed before 14:00 CET with 16GB phones arrive in 1-2 days.",
            [],
        ),
        ("Hello! Dear customer, thanks for your patience.", []),
    ],
)
def test_specifics_in_realistic_replies(reply, expected):
    assert kinds(reply) == expected


def test_redaction_placeholders_and_urls_are_left_alone():
    reply = "Write to <EMAIL> or call <PHONE>; see https://help.example.com/orders/NW-123456 for details."
    assert kinds(reply) == []


# -- constants vs specifics, in a real store ------------------------------------------------


def _conversation(i, question, answer):
    return {
        "id": f"c-{i}",
        "source": "shop",
        "turns": [{"role": "customer", "text": question}, {"role": "agent", "text": answer}],
    }


def _write(path, conversations):
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    return path


def _pairs(database):
    with database.session() as session:
        return {
            p.target: (p.target_slotted, p.slots) for p in session.scalars(select(TrainingPair))
        }


def _known(database):
    with database.session() as session:
        return {
            (k.kind, k.value, k.conversations, k.constant)
            for k in session.scalars(select(KnownValue))
        }


def test_values_in_many_conversations_are_constants_and_rare_ones_become_slots(
    sqlite_database, tmp_path
):
    first = _write(
        tmp_path / "a.jsonl",
        [
            _conversation(
                i,
                f"How much is delivery for order NW-10000{i}? Thanks, Rosa{'' if i else ' Novak'}",
                f"Hi {name}, delivery for NW-10000{i} is 4.95 EUR; write to help@shop.example if it is late.",
            )
            for i, name in enumerate(["Rosa", "Ben"])
        ],
    )
    import_paths(sqlite_database, [first], ingest=IngestSettings(redact_allowlist=["shop.example"]))
    pairs = _pairs(sqlite_database)
    # Two conversations only: the price and the address are not constants yet.
    assert pairs[
        "Hi Rosa, delivery for NW-100000 is 4.95 EUR; write to help@shop.example if it is late."
    ][0] == (
        "Hi {customer_name}, delivery for {order_number} is {amount}; write to {email} if it is late."
    )
    second = _write(
        tmp_path / "b.jsonl",
        [
            _conversation(
                7,
                "what does delivery cost?",
                "Hello! Delivery is 4.95 EUR; questions to help@shop.example.",
            )
        ],
    )
    import_paths(
        sqlite_database, [second], ingest=IngestSettings(redact_allowlist=["shop.example"])
    )
    pairs = _pairs(sqlite_database)
    slotted_text, slots = pairs[
        "Hi Ben, delivery for NW-100001 is 4.95 EUR; write to help@shop.example if it is late."
    ]
    # The third conversation makes them constants, and the earlier pairs are re-slotted.
    assert (
        slotted_text
        == "Hi {customer_name}, delivery for {order_number} is 4.95 EUR; write to help@shop.example if it is late."
    )
    assert {(s["kind"], s["value"], s["constant"]) for s in slots} == {
        ("customer_name", "Ben", False),
        ("order_number", "NW-100001", False),
        ("amount", "4.95 EUR", True),
        ("email", "help@shop.example", True),
    }
    known = _known(sqlite_database)
    assert ("amount", "495eur", 3, True) in known and (
        "email",
        "help@shop.example",
        3,
        True,
    ) in known
    assert ("customer_name", "rosa", 1, False) in known and not any(
        k[0] == "order_number" for k in known
    )
    # The original target is never changed; importing the same file again changes nothing.
    assert (
        "Hi Ben, delivery for NW-100001 is 4.95 EUR; write to help@shop.example if it is late."
        in pairs
    )
    before = _pairs(sqlite_database)
    import_paths(
        sqlite_database, [first, second], ingest=IngestSettings(redact_allowlist=["shop.example"])
    )
    assert _pairs(sqlite_database) == before


def test_the_threshold_is_a_setting_and_names_are_never_constants(sqlite_database, tmp_path):
    path = _write(
        tmp_path / "a.jsonl",
        [
            _conversation(
                i,
                f"Can I pay {['later', 'afterwards', 'next month'][i]}? Thanks, Samir",
                "Hi Samir, pay-later costs 2.50 EUR extra.",
            )
            for i in range(3)
        ]
        + [_conversation(9, "hello", "Hi Samir, anything else? Pay-later costs 2.50 EUR.")],
    )
    import_paths(sqlite_database, [path], ingest=IngestSettings(constant_min_conversations=5))
    assert all(
        text == "Hi {customer_name}, pay-later costs {amount} extra."
        for t, (text, _) in _pairs(sqlite_database).items()
        if "extra" in t
    )
    recompute(sqlite_database, min_conversations=3)
    slotted_texts = {text for text, _ in _pairs(sqlite_database).values()}
    assert slotted_texts == {
        "Hi {customer_name}, pay-later costs 2.50 EUR extra.",
        "Hi {customer_name}, anything else? Pay-later costs 2.50 EUR.",
    }
    assert ("customer_name", "samir", 4, False) in _known(sqlite_database)


def test_a_failed_recount_leaves_the_previous_state(sqlite_database, tmp_path, monkeypatch):
    path = _write(
        tmp_path / "a.jsonl",
        [_conversation(1, "where is NW-555555?", "Hi! NW-555555 left us today.")],
    )
    import_paths(sqlite_database, [path])
    before = (_pairs(sqlite_database), _known(sqlite_database))
    import chatbot.ingest.constants as constants

    def broken(*args, **kwargs):
        raise RuntimeError("killed half way")

    monkeypatch.setattr(constants, "slot_summary", broken)
    with pytest.raises(RuntimeError):
        recompute(sqlite_database, min_conversations=1)
    assert (_pairs(sqlite_database), _known(sqlite_database)) == before


# -- filling, phrasing without, and the check on the way out ------------------------------------


@pytest.fixture
def guard(sqlite_database, tmp_path):
    path = _write(
        tmp_path / "shop.jsonl",
        [
            _conversation(
                i,
                f"Hello, order NW-71957{i} is late. Thanks, {name}",
                f"Hi {name}, NW-71957{i} has left our warehouse; delivery costs 4.95 EUR, see support@shop.example.",
            )
            for i, name in enumerate(["Samir", "Maya", "Yusuf"])
        ],
    )
    import_paths(sqlite_database, [path], ingest=IngestSettings(redact_allowlist=["shop.example"]))
    return SpecificsGuard(sqlite_database)


def test_slots_are_filled_from_this_conversation(guard):
    facts = guard.facts(["hey, its Daniel. can i change the delivery address? order NW-558547"])
    checked = guard.prepare(
        "Hi {customer_name}, I'm sorry, {order_number} has already been dispatched.", facts
    )
    assert (
        checked.ok
        and checked.text == "Hi Daniel, I'm sorry, NW-558547 has already been dispatched."
    )
    assert set(checked.filled) == {"customer_name", "order_number"}


@pytest.mark.parametrize(
    "slotted_reply, expected",
    [
        (
            "Hi {customer_name},\n\nyour order {order_number} has been dispatched.",
            "Hi,\n\nYour order has been dispatched.",
        ),
        (
            "Thanks, {customer_name}! {order_number} is still Processing.",
            "Thanks! Your order is still Processing.",
        ),
        (
            "Thanks for reaching out, {customer_name}. I've flagged the refund for {order_number} as urgent.",
            "Thanks for reaching out. I've flagged the refund for your order as urgent.",
        ),
        (
            "Dear {customer_name}, I've changed the delivery address to {address}.",
            "Dear customer, I've changed the delivery address.",
        ),
        ("Please try again. Kind regards,\n{agent_name}", "Please try again. Kind regards,"),
        (
            "<HANDLE> Please submit a ticket here. *{agent_name}",
            "<HANDLE> Please submit a ticket here.",
        ),
    ],
)
def test_a_reply_is_phrased_without_what_the_conversation_does_not_hold(
    guard, slotted_reply, expected
):
    checked = guard.prepare(
        slotted_reply, guard.facts(["Can I change the delivery address of my order?"])
    )
    assert checked.ok and checked.text == expected and checked.unfilled


@pytest.mark.parametrize(
    "reply",
    [
        "Hi! NW-719570 has already been dispatched, so we can't change the address.",  # another customer's order number
        "Hi Maya! You can return it within 30 days.",  # another customer's name
        "Sure. Maya asked the same yesterday.",  # a name known from the history, anywhere
        "I'm sorry for the trouble, James! Returns are free.",  # an invented name where a greeting puts one
        "Hello Priya, returns are free.",
        "Your refund of 37.20 EUR was issued on 3 March.",  # an amount and a date of someone else's case
        "Your order {order_number} is late.".replace("{order_number}", "AB-998877"),
    ],
)
def test_a_reply_with_someone_elses_specifics_is_never_sent(guard, reply):
    checked = guard.prepare(reply, guard.facts(["Can I change the delivery address of my order?"]))
    assert not checked.ok and "not this customer's" in checked.why


@pytest.mark.parametrize(
    "message, reply",
    [
        (
            "Where is order NW-123456? Thanks, Emma",
            "Hi Emma! NW-123456 has left our warehouse.",
        ),  # the customer's own
        (
            "How much is delivery?",
            "Delivery costs 4.95 EUR; questions to support@shop.example.",
        ),  # company constants
        (
            "Hi, my name is Daniel Moreau. Can I get cash back?",
            "Thanks for reaching out, Daniel. Refunds go to the card.",
        ),
        (
            "How long do refunds take?",
            "Refunds take 5-7 working days after the return reaches our warehouse.",
        ),
    ],
)
def test_the_customers_own_values_and_company_constants_are_sent(guard, message, reply):
    checked = guard.prepare(reply, guard.facts([message]))
    assert checked.ok and checked.text == reply


def test_the_check_reads_new_constants_after_an_import(guard, sqlite_database, tmp_path):
    facts = guard.facts(["what does gift wrap cost?"])
    assert not guard.prepare("Gift wrap is 3.50 EUR.", facts).ok
    path = _write(
        tmp_path / "more.jsonl",
        [
            _conversation(
                20 + i, f"gift wrap {['price', 'cost', 'fee'][i]}?", "Gift wrap is 3.50 EUR."
            )
            for i in range(3)
        ],
    )
    import_paths(sqlite_database, [path])
    assert guard.prepare("Gift wrap is 3.50 EUR.", guard.facts(["what does gift wrap cost?"])).ok


def test_a_name_greeted_without_punctuation_is_learned_from_the_store(sqlite_database, tmp_path):
    # "Dear, Xiaomei has told you": one reply cannot tell the name from a word, the store
    # can (never lower case, written by few conversations' agents); a brand greeted the
    # same way ("Dear Northwind customer") is written in many and stays sendable.
    path = _write(
        tmp_path / "helpdesk.jsonl",
        [
            _conversation(
                1, "my phone screen is black", "Dear, Xiaomei has told you to restart it."
            ),
            _conversation(2, "still black", "Hello Lao thanks, please restart it."),
        ]
        + [
            _conversation(
                10 + i,
                f"question about {topic}",
                f"Dear Northwind customer, Northwind handles {topic} in the app.",
            )
            for i, topic in enumerate(
                "returns refunds invoices vouchers deliveries passwords accounts addresses "
                "parcels payments cards receipts sizes colours warranties repairs exchanges "
                "newsletters reviews wishlists baskets discounts coupons samples catalogues".split()
            )
        ],
    )
    import_paths(sqlite_database, [path])
    names = {value for kind, value, _, _ in _known(sqlite_database) if kind == "customer_name"}
    assert {"xiaomei", "lao"} <= names and "northwind" not in names
    guard = SpecificsGuard(sqlite_database)
    sent = guard.prepare(
        "Xiaomei will send you a private message.", guard.facts(["my phone is broken"])
    )
    assert not sent.ok and "not this customer's" in sent.why
    assert guard.prepare("Northwind answers within 2 days.", guard.facts(["how long?"])).ok


# -- the demo shop through the dialogue manager ----------------------------------------------

DEMO_QUESTIONS = [
    "Can I change the delivery address of my order?",
    "Hi, my parcel still hasn't arrived, where is my order?",
    "How do I return a jacket that doesn't fit?",
    "When will I get my refund?",
    "Do you ship to Canada?",
    "I forgot my password",
    "I was charged twice for my order",
    "Can I cancel my order?",
    "My card keeps getting declined",
    "How long does delivery take?",
    "I want to change my e-mail address",
    "Can I get an invoice?",
]


@pytest.fixture
def demo(tiny_settings, sqlite_database):
    from tests.test_dialogue_support import build_retriever

    import_paths(
        sqlite_database, [DEMO], ingest=IngestSettings(redact_allowlist=["northwindgoods.example"])
    )
    retriever = build_retriever(tiny_settings, sqlite_database)
    with sqlite_database.session() as session:
        targets = list(session.scalars(select(TrainingPair.target)))
        names = set(
            session.scalars(select(KnownValue.value).where(KnownValue.kind == "customer_name"))
        )
    orders = {m for t in targets for m in re.findall(r"NW-\d{6}", t)}
    return tiny_settings, sqlite_database, retriever, orders, names


def _names_in(text, names):
    return {w for w in re.findall(r"[A-Z][a-z]+", text) if w.lower() in names}


def test_demo_questions_never_get_another_customers_order_number_or_name(demo):
    from tests.test_dialogue_support import make_manager

    settings, database, retriever, orders, names = demo
    assert len(orders) > 50 and {"samir", "emma", "yusuf", "maya"} <= names
    manager = make_manager(
        settings,
        database,
        retriever,
        source=None,
        generate=False,
        handoff_threshold=0.0,
        answer_threshold=0.0,
        handoff_on_out_of_scope=False,
    )
    sent = 0
    for question in DEMO_QUESTIONS:
        reply = manager.respond(question)
        assert not re.search(r"NW-\d{6}", reply.shown_text), (question, reply.shown_text)
        assert not _names_in(reply.shown_text, names), (question, reply.shown_text)
        assert not re.search(r"\{\w+\}", reply.shown_text)
        # Nor do the sources shown under the reply.
        for citation in reply.citations:
            assert not re.search(r"NW-\d{6}|\{\w+\}", citation.snippet), citation.snippet
            assert not _names_in(citation.snippet, names), citation.snippet
        # Nor a report on another customer's order ("it is already on its way; I've asked the carrier").
        assert reply.decision != "answer" or not reports_on_a_case(reply.shown_text), (
            question,
            reply.shown_text,
        )
        sent += reply.decision == "answer"
        withheld = [c for c in reply.to_dict()["candidates"] if "blocked" in c]
        assert all(
            c["blocked"].startswith(("another customer's specifics", "repeats")) for c in withheld
        )
    assert sent >= len(DEMO_QUESTIONS) // 2


def test_demo_a_customer_gets_their_own_order_number_and_name_back(demo):
    from tests.test_dialogue_support import make_manager

    settings, database, retriever, orders, names = demo
    manager = make_manager(
        settings,
        database,
        retriever,
        source=None,
        generate=False,
        handoff_threshold=0.0,
        answer_threshold=0.0,
        handoff_on_out_of_scope=False,
    )
    reply = manager.respond(
        "hey, its Daniel. can i change the delivery address? i moved. order NW-123456"
    )
    assert reply.decision == "answer"
    assert set(re.findall(r"NW-\d{6}", reply.shown_text)) <= {"NW-123456"}
    assert _names_in(reply.shown_text, names) <= {"Daniel"}


def test_without_the_check_the_demo_leaks_and_with_it_a_raw_leak_is_withheld(demo):
    """The before/after in one test: the raw past answers hold other customers' order
    numbers; a manager without the guard sends one, the real one withholds it and says why."""
    from tests.test_dialogue_support import make_manager

    settings, database, retriever, orders, names = demo
    question = "hello can i change the delivery address? i moved."
    kwargs = dict(
        source=None,
        generate=False,
        handoff_threshold=0.0,
        answer_threshold=0.0,
        handoff_on_out_of_scope=False,
    )
    with database.session() as session:  # an unslotted pair, as before this existed
        for pair in session.scalars(
            select(TrainingPair).where(TrainingPair.target.like("%NW-719574%"))
        ):
            pair.target_slotted = None
    unguarded = make_manager(settings, database, retriever, **kwargs)
    unguarded.specifics = None
    guarded = make_manager(settings, database, retriever, **kwargs)
    leaked = unguarded.respond(question)
    safe = guarded.respond(question)
    assert not re.search(r"NW-\d{6}", safe.shown_text)
    if re.search(r"NW-\d{6}", leaked.shown_text):  # the index put such an answer on top
        assert any(
            c.get("pair_id") == leaked.citations[0].pair_id for c in safe.to_dict()["candidates"]
        )


@pytest.mark.parametrize(
    ("reply", "reports"),
    [
        (
            "Unfortunately the parcel is already on its way. I've asked the carrier to redirect it.",
            True,
        ),
        ("Good news: your order is still Processing, so I've changed the delivery address.", True),
        ("I can see the return was received 4 working days ago.", True),
        (
            "As long as the order is Processing you can change it yourself under Orders > Edit delivery address.",
            False,
        ),
        (
            "Returns are free within 30 days: start one under Orders > select the order > Return items.",
            False,
        ),
        ("We'll open a carrier investigation; it takes up to 3 working days.", False),
    ],
)
def test_a_reply_that_reports_on_one_customers_case_is_told_apart(reply, reports):
    assert reports_on_a_case(reply) is reports
