"""`chatbot import` and `chatbot pairs` through the command line, and an import killed
with SIGKILL halfway through (a real subprocess) leaving the store as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.store.conversations import table_counts
from tests.test_ingest_import import GOOD, record, write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def env(database_url, migrated_database, tmp_path):
    return {"CHATBOT_DATABASE_URL": database_url, "CHATBOT_HOME": str(tmp_path / "home")}


def test_import_json_summary_and_pairs_commands(env, migrated_database, tmp_path):
    runner = CliRunner()
    path = write(tmp_path / "t.jsonl", GOOD + [record("bad", ("robot", "beep"))])
    result = runner.invoke(main, ["import", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["conversations"], summary["messages"], summary["pairs"]) == (3, 8, 4)
    assert summary["skipped"] == {"bad_role": 1} and summary["redactions"] == {
        "email": 1,
        "card": 1,
    }
    assert summary["files"][0]["problems"][0]["line"] == 4

    again = runner.invoke(main, ["import", str(path)], env=env)
    assert (
        again.exit_code == 0
        and "already imported" in again.stdout
        and "total: 0 conversations" in again.stdout
    )

    stats = runner.invoke(main, ["pairs", "stats", "--json"], env=env)
    assert stats.exit_code == 0
    assert (
        json.loads(stats.stdout)["pairs"] == 4
        and json.loads(stats.stdout)["by_source"]["shop"]["total"] == 4
    )
    text = runner.invoke(main, ["pairs", "stats"], env=env)
    assert "pairs: 4" in text.stdout and "shop" in text.stdout

    out = tmp_path / "pairs.jsonl"
    exported = runner.invoke(main, ["pairs", "export", "-o", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["external_id"] for r in rows} == {"c1", "c2", "c3"}
    assert all(
        r["context"][-1]["role"] == "customer" and r["split"] in ("train", "val", "test")
        for r in rows
    )
    assert json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())["pairs"] == 4
    stdout_rows = runner.invoke(main, ["pairs", "export", "--source", "nope"], env=env)
    assert stdout_rows.exit_code == 0 and stdout_rows.stdout == ""


def test_strict_and_unreadable_files_exit_with_an_error(env, migrated_database, tmp_path):
    runner = CliRunner()
    bad = write(tmp_path / "bad.jsonl", GOOD + ['{"id": "x", "turns": [{"role": "customer", "te'])
    result = runner.invoke(main, ["import", "--strict", str(bad)], env=env)
    assert result.exit_code == 1
    assert "rejected" in result.stdout and f"{bad}:4: not valid JSON" in result.stderr
    with migrated_database.session() as session:
        assert table_counts(session=session)["conversations"] == 0
    csv = tmp_path / "faq.csv"
    csv.write_text("text,reply\nq?,a.\n")
    missing_map = runner.invoke(main, ["import", str(csv)], env=env)
    assert missing_map.exit_code == 1 and "cannot tell the format" in missing_map.stdout
    mapped = runner.invoke(
        main, ["import", str(csv), "--map", "question=text,answer=reply"], env=env
    )
    assert mapped.exit_code == 0 and "1 conversations" in mapped.stdout
    bad_map = runner.invoke(main, ["import", str(csv), "--map", "question"], env=env)
    assert bad_map.exit_code == 2 and "FIELD=COLUMN" in bad_map.output


def test_import_killed_midway_leaves_the_store_unchanged(env, migrated_database, tmp_path):
    write(tmp_path / "first.jsonl", GOOD)
    subprocess.run(
        [sys.executable, "-m", "chatbot", "import", str(tmp_path / "first.jsonl")],
        env={**os.environ, **env},
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    with migrated_database.session() as session:
        before = table_counts(session=session)
    big = tmp_path / "big.jsonl"
    with big.open("w") as fh:
        for i in range(40_000):
            fh.write(
                record(
                    f"big-{i}",
                    ("customer", f"Question {i} about order NW-{i:06d}?"),
                    ("agent", f"Answer {i}: it ships within {i % 7 + 1} days."),
                    ("customer", f"Follow-up {i}"),
                    ("agent", f"Reply {i} to the follow-up."),
                )
                + "\n"
            )
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "-vv", "import", str(big)],
        env={**os.environ, **env, "CHATBOT_INGEST__BATCH_SIZE": "200"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    batches = 0
    try:
        for line in process.stderr:
            if "stored a batch" in line:
                batches += 1
                if batches == 3:  # rows of this import are now written, not yet committed
                    break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert batches == 3 and process.returncode == -signal.SIGKILL
    with migrated_database.session() as session:
        assert table_counts(session=session) == before
    # The store still works and the file imports cleanly afterwards.
    small = write(tmp_path / "small.jsonl", big.read_text().splitlines()[:50])
    done = subprocess.run(
        [sys.executable, "-m", "chatbot", "import", "--json", str(small)],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["conversations"] == 50


def test_import_a_folder_takes_every_transcript_file_under_it(env, migrated_database, tmp_path):
    runner = CliRunner()
    folder = tmp_path / "exports"
    (folder / "b-sub").mkdir(parents=True)
    (folder / ".cache").mkdir()
    write(
        folder / "b-sub" / "more.jsonl",
        [record("c9", ("customer", "Do you ship to Canada?"), ("agent", "Yes, in 5 days."))],
    )
    write(folder / "a.jsonl", GOOD)
    (folder / "faq.csv").write_text('question,answer\nOpen on Sunday?,"No, Monday to Saturday."\n')
    write(
        folder / ".hidden.jsonl",
        [record("h1", ("customer", "hidden?"), ("agent", "never imported"))],
    )
    write(
        folder / ".cache" / "x.jsonl",
        [record("h2", ("customer", "cached?"), ("agent", "never imported"))],
    )
    (folder / "README.md").write_text("# not a transcript\n")
    result = runner.invoke(main, ["import", str(folder), "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [f["path"] for f in summary["files"]] == [
        str(folder / "a.jsonl"),
        str(folder / "b-sub" / "more.jsonl"),
        str(folder / "faq.csv"),
    ]
    assert [f["format"] for f in summary["files"]] == ["jsonl", "jsonl", "csv"]
    assert summary["conversations"] == 5 and summary["left_out"] == [str(folder / "README.md")]
    text = runner.invoke(main, ["import", str(folder)], env=env)
    assert text.exit_code == 0 and text.stdout.count("already imported") == 3
    assert "left out: 1" in text.stderr and "README.md" in text.stderr

    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "notes.txt").write_text("hello\n")
    refused = runner.invoke(main, ["import", str(empty)], env=env)
    assert refused.exit_code == 1
    assert f"{empty}: holds no file to import: expected files ending in .jsonl" in refused.output
    assert "found 1 other file(s)" in refused.output and "Traceback" not in refused.output
