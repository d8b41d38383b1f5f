"""The real transcript sets in ../shared/datasets: everything imports, the summary's
counts match the files, a second import adds nothing, and no e-mail address from the
Twitter set survives into stored pairs or messages."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from chatbot.ingest.importer import import_paths
from chatbot.store.conversations import table_counts
from chatbot.store.schema import Message, TrainingPair

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+\s?@\s?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def expected_counts(path):
    """Conversations and merged, non-empty turns, counted independently of the importer."""
    seen, conversations, messages = set(), 0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        turns = [(t["role"], t["text"].replace("\r\n", "\n").strip()) for t in record["turns"]]
        turns = [t for t in turns if t[1]]
        merged = []
        for role, text in turns:
            if merged and merged[-1][0] == role:
                merged[-1] = (role, merged[-1][1] + "\n" + text)
            else:
                merged.append((role, text))
        key = json.dumps([record["source"], merged])
        if key in seen:
            continue
        seen.add(key)
        conversations += 1
        messages += len(merged)
    return conversations, messages


def test_all_transcripts_import_and_reimport_adds_nothing(migrated_database, shared_datasets):
    files = sorted((shared_datasets / "transcripts").glob("*.jsonl"))
    assert len(files) >= 6
    summary = import_paths(migrated_database, files)
    assert summary.ok and not summary.problems
    for path, item in zip(files, summary.files, strict=True):
        assert (item.conversations, item.messages) == expected_counts(path), path.name
        assert item.pairs > 0
    assert summary.conversations > 7000
    with migrated_database.session() as session:
        counts = table_counts(session=session)
    assert (
        counts["conversations"] == summary.conversations and counts["messages"] == summary.messages
    )
    assert counts["training_pairs"] == summary.pairs and counts["imports"] == len(files)
    again = import_paths(migrated_database, files)
    assert [f.status for f in again.files] == ["already_imported"] * len(files)
    with migrated_database.session() as session:
        assert table_counts(session=session) == counts


def test_no_twitter_email_address_survives(migrated_database, shared_datasets):
    path = shared_datasets / "transcripts" / "ibm_twitter_care.dev.jsonl"
    addresses = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        for turn in json.loads(line)["turns"]:
            addresses.update(re.sub(r"\s", "", m).lower() for m in EMAIL.findall(turn["text"]))
    assert len(addresses) >= 5  # the set really is a PII test bed
    summary = import_paths(migrated_database, [path])
    assert summary.redactions["email"] >= len(addresses)
    with migrated_database.session() as session:
        stored = [
            json.dumps(p.context) + "\n" + p.target for p in session.scalars(select(TrainingPair))
        ]
        stored += [m.text for m in session.scalars(select(Message))]
    assert len(stored) > 1000
    blob = "\n".join(stored).lower()
    assert not [a for a in addresses if a in blob]
    assert not EMAIL.search("\n".join(stored))
    assert (
        "<EMAIL>" in "\n".join(stored) and "https://" in blob
    )  # placeholders in, support URLs kept
