"""Property-based tests (hypothesis) of the importer and of redaction.

The importer: any JSON Lines file (records of the right shape with arbitrary text,
arbitrary JSON values, garbage lines, control characters, lone surrogates) either
imports, or lists its bad records with the file and the line, or fails as a whole with
an InputError-style one-line error: never an exception; and importing it again (the
same bytes, or the same records in other bytes) adds nothing. On SQLite and PostgreSQL.

Redaction: idempotent; never crashes on arbitrary unicode; what it returns holds no
e-mail address, phone or card number its own patterns would still replace; a generated
e-mail, phone number, card number or handle put anywhere between words is gone.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chatbot.ingest.importer import import_paths
from chatbot.store.conversations import table_counts
from chatbot.text.redact import (
    CARD_RE,
    EMAIL_RE,
    PHONE_RE,
    Redactor,
    card_brand_ok,
    looks_like_phone,
    luhn_ok,
)
from chatbot.text.sanitize import clean_text

FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- the importer ------------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
roles = st.sampled_from(["customer", "agent", "bot", "user", "assistant", "Customer", "", "robot"])
turns = st.fixed_dictionaries({"role": roles, "text": any_text}) | st.dictionaries(
    any_text, json_values, max_size=3
)
records = st.fixed_dictionaries(
    {"turns": st.lists(turns, max_size=5)},
    optional={
        "id": any_text | st.integers(),
        "source": any_text,
        "meta": json_values | st.dictionaries(any_text, json_values),
    },
)
good_records = st.fixed_dictionaries(
    {
        "id": any_text,
        "turns": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["customer", "agent"]), "text": any_text}
            ),
            min_size=1,
            max_size=5,
        ),
    },
    optional={"meta": st.dictionaries(any_text, json_values, max_size=3)},
)


def as_line(value) -> str:
    try:
        return json.dumps(value, ensure_ascii=True)  # lone surrogates become \\ud800 escapes
    except (TypeError, ValueError):
        return "null"


lines = st.one_of(
    good_records.map(as_line),
    records.map(as_line),
    json_values.map(as_line),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=60),
)
files = st.lists(lines, min_size=1, max_size=6)


@pytest.fixture
def import_dir(tmp_path):
    return tmp_path


@FAST
@given(file_lines=files)
@example(
    file_lines=[
        '{"turns": [{"role": "customer", "text": "a\\u0000b\\ud800\\u001b[2J"}, {"role": "agent", "text": "ok\\u202e"}]}'
    ]
)
@example(file_lines=["", "   ", "{}"])
@example(file_lines=["[true]"])
@example(file_lines=["[" * 100_000 + "]" * 100_000])
@example(
    file_lines=[
        '{"id": "deep", "turns": [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "hello"}], '
        '"meta": {"a": ' + "[" * 900 + "]" * 900 + "}}"
    ]
)
def test_any_json_lines_file_imports_or_says_where_it_is_wrong(
    migrated_database, import_dir, file_lines
):
    path = import_dir / f"f{len(list(import_dir.glob('*.jsonl')))}.jsonl"
    path.write_text("\n".join(file_lines) + "\n", encoding="utf-8", errors="surrogatepass")
    summary = import_paths(migrated_database, [path], format="jsonl")
    result = summary.files[0]
    assert result.status in ("imported", "failed", "already_imported"), result
    if result.status == "failed":
        assert result.error and str(path) in result.error and "\n" not in result.error
    first = next((line.strip() for line in file_lines if line.strip()), "")
    json_lines = first.startswith("{") and first.endswith("}") and len(file_lines) > 0
    for problem in result.problems:
        assert problem.path == str(path) and str(problem).startswith(f"{path}")
        # A record of JSON Lines is named by its line; one of a JSON document by its number.
        assert (
            problem.line is not None
            or problem.index is not None
            or problem.kind == "unreadable_file"
        ), problem
        if json_lines and problem.kind != "unreadable_file" and result.status != "failed":
            assert problem.line is not None, problem
    with migrated_database.session() as session:
        before = table_counts(session=session)
        before.pop("imports")  # each new file is an import run of its own, even if it adds nothing
    again = import_paths(migrated_database, [path], format="jsonl").files[0]
    assert again.status in ("already_imported", "failed")
    # The same records in other bytes (another line ending; the same file name, which
    # is the records' source when they name none): nothing new either.
    other = import_dir / f"{path.stem}-crlf" / path.name
    other.parent.mkdir()
    other.write_text("\r\n".join(file_lines) + "\r\n\r\n", encoding="utf-8", errors="surrogatepass")
    third = import_paths(migrated_database, [other], format="jsonl").files[0]
    assert third.conversations == 0 and third.messages == 0 and third.pairs == 0
    with migrated_database.session() as session:
        after = table_counts(session=session)
        after.pop("imports")
        assert after == before
        from sqlalchemy import select

        from chatbot.store.schema import Message

        for text in session.scalars(select(Message.text)):
            assert text == clean_text(text)  # nothing stored that the terminal would obey


def test_a_file_of_good_records_imports_them_all(migrated_database, tmp_path):
    """The property above also holds trivially for a file that always fails; this one
    checks the importer does import well-formed records with hostile text."""
    path = tmp_path / "good.jsonl"
    rows = [
        {
            "id": f"c{i}",
            "turns": [
                {"role": "customer", "text": f"question {i} \x1b[1m\u202e"},
                {"role": "agent", "text": f"answer {i}\x00"},
            ],
        }
        for i in range(5)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    summary = import_paths(migrated_database, [path])
    assert (summary.conversations, summary.messages) == (5, 10) and not summary.files[0].problems


# -- redaction ---------------------------------------------------------------------------

REDACTOR = Redactor()
words = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
local_parts = st.from_regex(r"[a-z][a-z0-9._+-]{0,12}[a-z0-9]", fullmatch=True)
domains = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]\.(com|org|example|co\.uk|de)", fullmatch=True)
emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
phones = st.builds(
    lambda country, groups, sep: "+" + country + sep + sep.join(groups),
    st.sampled_from(["44", "1", "49", "33", "31"]),
    st.lists(st.from_regex(r"[0-9]{3,4}", fullmatch=True), min_size=3, max_size=3),
    st.sampled_from([" ", "-"]),
)


def luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


cards = st.builds(
    lambda body, sep: sep.join(luhn_complete("4" + body)[i : i + 4] for i in range(0, 16, 4)),
    st.from_regex(r"[0-9]{14}", fullmatch=True),
    st.sampled_from(["", " ", "-"]),
)
handles = st.from_regex(r"@[A-Za-z0-9_]{1,15}", fullmatch=True)


def leftovers(text: str) -> list[str]:
    """What the redactor's own patterns would still replace in `text`."""
    found = [m.group(0) for m in EMAIL_RE.finditer(text)]
    for m in CARD_RE.finditer(text):
        digits = "".join(c for c in m.group(0) if c.isdigit())
        if 13 <= len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
            found.append(m.group(0))
    for m in PHONE_RE.finditer(text):
        candidate = m.group(0).rstrip(").- ")
        if looks_like_phone(candidate, text[: m.start()]):
            found.append(m.group(0))
    return found


@FAST
@given(text=st.text(max_size=200))
@example(text="mail a@b.co@handle 4111 1111 1111 1111 +44 20 7946 0958 \ud800")
def test_redaction_never_crashes_and_is_idempotent(text):
    once = REDACTOR.redact(text)
    assert isinstance(once, str)
    assert REDACTOR.redact(once) == once
    assert leftovers(once) == []


@FAST
@given(before=words, after=words, pii=st.one_of(emails, phones, cards, handles))
def test_pii_between_words_is_always_removed(before, after, pii):
    text = f"{before} {pii} {after}"
    assume(pii not in before and pii not in after)
    redacted = REDACTOR.redact(text)
    assert pii not in redacted
    assert REDACTOR.redact(redacted) == redacted and leftovers(redacted) == []
