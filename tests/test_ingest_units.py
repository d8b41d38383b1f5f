"""Reading, detection, redaction and pair building, without a database."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chatbot.errors import InputError
from chatbot.ingest.detect import detect_format
from chatbot.ingest.formats import FormatOptions, parser_for
from chatbot.ingest.pairs import build_pairs, labels_from_meta, split_for, trivial_reason
from chatbot.ingest.readers import iter_lines
from chatbot.ingest.records import Problem
from chatbot.text.redact import Redactor

RECORDS = [
    {
        "id": "c1",
        "source": "shop",
        "turns": [
            {"role": "customer", "text": "Où est ma commande NW-123456 ?"},
            {"role": "agent", "text": "Elle arrive demain."},
        ],
    },
    {
        "id": "c2",
        "source": "shop",
        "turns": [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "Hello!"}],
    },
]
JSONL = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS)


def parse(path, fmt, column_map=None):
    return list(parser_for(fmt)(iter_lines(path), str(path), FormatOptions(column_map or {})))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_every_supported_encoding_reads_the_same_records(tmp_path, encoding):
    path = tmp_path / "t.jsonl"
    path.write_bytes(JSONL.encode(encoding))
    assert detect_format(path) == "jsonl"
    items = parse(path, "jsonl")
    assert [i.external_id for i in items] == ["c1", "c2"]
    assert items[0].turns[0].text == "Où est ma commande NW-123456 ?"


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        JSONL.encode("utf-8")
        + json.dumps({"id": "c3", "turns": []}, ensure_ascii=False)
        .replace("[]", '"café"')
        .encode("latin-1")
    )
    with pytest.raises(InputError) as err:
        list(iter_lines(path))
    assert err.value.line == 3
    assert "latin1.jsonl:3" in str(err.value) and "0xe9" in str(err.value)


def test_binary_and_empty_files_are_refused(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(InputError, match="binary file"):
        detect_format(binary)
    gzip_like = tmp_path / "data.jsonl"
    gzip_like.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(1, 32)) * 40)
    with pytest.raises(InputError, match="binary file"):
        detect_format(gzip_like)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n  \n")
    with pytest.raises(InputError, match="empty"):
        detect_format(empty)


def test_detection_uses_content_not_the_file_name(tmp_path):
    samples = {
        "jsonl": JSONL,
        "csv": "text;reply\nwhere is it?;on its way\n",
        "zendesk": json.dumps(
            {
                "tickets": [
                    {"id": 1, "requester_id": 5, "comments": [{"author_id": 5, "body": "hi"}]}
                ]
            },
            indent=2,
        ),
        "intercom": json.dumps(
            {
                "type": "conversation",
                "id": "9",
                "source": {"body": "<p>x</p>", "author": {"type": "user"}},
                "conversation_parts": {"conversation_parts": []},
            }
        )
        + "\n",
        "chatwoot": json.dumps([{"id": 3, "messages": [{"content": "x", "message_type": 0}]}]),
    }
    for expected, text in samples.items():
        path = tmp_path / f"export-{expected}.csv"  # every file misleadingly named .csv
        path.write_text(text, encoding="utf-8")
        column_map = {"question": "text", "answer": "reply"} if expected == "csv" else None
        assert detect_format(path, column_map) == expected, expected
    unknown = tmp_path / "notes.jsonl"
    unknown.write_text('{"hello": "world"}\n')
    with pytest.raises(InputError, match="not a format this importer knows"):
        detect_format(unknown)


def test_truncated_json_line_is_a_problem_with_its_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(JSONL + JSONL.splitlines()[0][:40] + "\n")
    items = parse(path, "jsonl")
    assert isinstance(items[-1], Problem)
    assert (
        items[-1].line == 3 and items[-1].kind == "invalid_json" and "cut short" in items[-1].reason
    )


@pytest.mark.parametrize(
    "fmt, good, missing, bad",
    [
        (
            "jsonl",
            {"id": 7, "turns": []},
            ("missing field 'id'", "missing_field"),
            ("field 'id' must be a non-empty string or number, got ''", "bad_field"),
        ),
        (
            "zendesk",
            {"id": 7, "comments": []},
            ("ticket has no 'id'", "missing_field"),
            ("ticket has no 'id'", "missing_field"),
        ),
        (
            "intercom",
            {"id": 7, "source": {"body": "hi", "author": {"type": "user"}}},
            ("conversation has no 'id'", "missing_field"),
            ("conversation has no 'id'", "missing_field"),
        ),
        (
            "chatwoot",
            {"id": 7, "messages": []},
            ("conversation has no 'id'", "missing_field"),
            ("conversation has no 'id'", "missing_field"),
        ),
    ],
)
def test_a_record_without_a_usable_id_is_a_problem_at_its_line(tmp_path, fmt, good, missing, bad):
    """Every export format opens a record the same way: its id, or a problem naming
    the file and the line."""
    without = {k: v for k, v in good.items() if k != "id"}
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, without, {**good, "id": ""}]))
    first, second, third = parse(path, fmt)
    assert not isinstance(first, Problem) and first.external_id == "7" and first.line == 1
    assert isinstance(second, Problem) and isinstance(third, Problem)
    assert (second.reason, second.kind, second.where()) == (*missing, f"{path}:2")
    assert (third.reason, third.kind, third.where()) == (*bad, f"{path}:3")


def test_redaction_replaces_pii_but_keeps_urls_and_order_numbers():
    redactor = Redactor()
    counts: Counter = Counter()
    text = (
        "@TeamHelp mail jane.doe+x@gmail.com or call +44 7700 900123 / (555) 123-4567, card 4111 1111 1111 1111 "
        "(not 4111 1111 1111 1112), order NW-123456, id 3348917502, see https://help.example.com/a/185111?x=1 "
        "ip 192.168.1.10 on 2004-11-15 costs 4.95"
    )
    out = redactor.redact(text, counts)
    assert out == (
        "<HANDLE> mail <EMAIL> or call <PHONE> / <PHONE>, card <CARD> (not 4111 1111 1111 1112), order NW-123456, "
        "id 3348917502, see https://help.example.com/a/185111?x=1 ip 192.168.1.10 on 2004-11-15 costs 4.95"
    )
    assert counts == Counter(email=1, phone=2, card=1, handle=1)
    assert (
        Redactor(allowlist=["shop.example"]).redact("write to help@shop.example or me@x.org")
        == "write to help@shop.example or <EMAIL>"
    )
    assert (
        Redactor(kinds=["email"]).redact("@bob +44 7700 900123 a@b.co")
        == "@bob +44 7700 900123 <EMAIL>"
    )


def test_trivial_replies_are_recognised():
    assert trivial_reason("You're welcome! Have a great day :)") == "greeting_or_signoff"
    assert trivial_reason("Thanks @bob ^JM") == "greeting_or_signoff"
    assert trivial_reason("   ") == "empty_target"
    assert (
        trivial_reason("Sorry to hear that! Please DM us your order number and we'll look into it.")
        == "dm_request_without_content"
    )
    assert trivial_reason("That feature isn't available yet; DM us if it keeps crashing.") is None
    assert trivial_reason("DM us, or reset it here: https://help.example.com/reset") is None
    assert trivial_reason("No") is None  # an answer, not a greeting
    assert trivial_reason("Refunds take 5-7 working days.") is None


def test_pairs_use_a_window_and_skip_agent_openings():
    turns = [
        ("agent", "Hi! How can I help?"),
        ("customer", "q1"),
        ("agent", "a1 long enough"),
        ("customer", "q2"),
        ("agent", "a2 also fine"),
        ("customer", "q3"),
        ("agent", "a3 fine too"),
    ]
    pairs, skipped = build_pairs(turns, window=3)
    assert skipped == {"no_customer_message": 1}
    assert [p.turn_index for p in pairs] == [2, 4, 6]
    assert pairs[2].context == [
        {"role": "customer", "text": "q2"},
        {"role": "agent", "text": "a2 also fine"},
        {"role": "customer", "text": "q3"},
    ]
    assert pairs[0].context[-1] == {"role": "customer", "text": "q1"}


def test_near_duplicates_share_a_key():
    a, _ = build_pairs(
        [("customer", "Where is order 123?"), ("agent", "@ann It's on its way! ^JM")], window=4
    )
    b, _ = build_pairs(
        [("customer", "where is order 456"), ("agent", "@bob it's on its way")], window=4
    )
    c, _ = build_pairs(
        [("customer", "where is order 456"), ("agent", "It was cancelled.")], window=4
    )
    assert a[0].content_hash == b[0].content_hash != c[0].content_hash


def test_split_is_deterministic_and_roughly_proportional():
    splits = [
        split_for("src", f"conv-{i}", val_fraction=0.1, test_fraction=0.1) for i in range(5000)
    ]
    again = [
        split_for("src", f"conv-{i}", val_fraction=0.1, test_fraction=0.1) for i in range(5000)
    ]
    assert splits == again
    share = Counter(splits)
    assert 350 < share["test"] < 650 and 350 < share["val"] < 650


def test_quality_labels():
    assert labels_from_meta({"quality": {"A": 1.0, "S": -0.5, "E": 0.5}, "intent": "x"}) == (
        pytest.approx(1 / 3),
        {"intent": "x", "quality": {"A": 1.0, "S": -0.5, "E": 0.5}},
    )
    assert labels_from_meta({"file": "a.txt"}) == (None, {})
