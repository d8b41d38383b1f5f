"""The command line: help, db and config commands, one-line errors, fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from chatbot.cli import main


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_lists_the_command_groups():
    result = run("--help")
    assert result.exit_code == 0
    for group in ("db", "models", "serve", "config"):
        assert f"  {group} " in result.output


def test_help_imports_no_heavy_library():
    """`chatbot --help` must stay fast: none of the big libraries may load for it."""
    heavy = [
        "torch",
        "transformers",
        "sentence_transformers",
        "faiss",
        "gradio",
        "sqlalchemy",
        "alembic",
    ]
    code = (
        "import sys\nfrom chatbot.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_db_upgrade_then_current(tmp_path):
    env = {"CHATBOT_HOME": str(tmp_path / "home")}
    first = run("db", "upgrade", "--json", env=env)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert payload["before"] is None and payload["changed"] is True
    second = run("db", "upgrade", env=env)
    assert "already at revision" in second.output
    current = json.loads(run("db", "current", "--json", env=env).stdout)
    assert current["up_to_date"] is True and current["current"] == payload["after"]
    assert (tmp_path / "home" / "chatbot.db").is_file()


def test_db_upgrade_on_postgres(postgres_url, tmp_path):
    result = run(
        "db",
        "upgrade",
        "--json",
        env={"CHATBOT_HOME": str(tmp_path), "CHATBOT_DATABASE_URL": postgres_url},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changed"] is True


def _one_line_error(result) -> str:
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_wrong_database_url_is_one_line(tmp_path):
    env = {
        "CHATBOT_HOME": str(tmp_path),
        "CHATBOT_DATABASE_URL": "postgresql://bob:pw@127.0.0.1:9/nope",
    }
    line = _one_line_error(CliRunner().invoke(main, ["db", "upgrade"], env=env))
    assert line.startswith(
        "Error: cannot connect to database postgresql+psycopg://bob:***@127.0.0.1:9/nope"
    )


def test_unwritable_data_directory_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_error(
        CliRunner().invoke(main, ["db", "upgrade"], env={"CHATBOT_HOME": str(blocker / "h")})
    )
    assert "data directory" in line and "CHATBOT_HOME" in line


def test_invalid_setting_is_one_line(tmp_path):
    line = _one_line_error(
        CliRunner().invoke(main, ["config", "show"], env={"CHATBOT_PORT": "seventy"})
    )
    assert "port: Input should be a valid integer" in line


def test_config_show_reports_effective_values(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("port = 8123\n")
    result = run(
        "--config",
        str(config),
        "config",
        "show",
        "--json",
        env={"CHATBOT_HOME": str(tmp_path / "h")},
    )
    values = json.loads(result.stdout)
    assert values["port"] == 8123
    assert values["home"] == str(tmp_path / "h")
    assert values["database_url"] == f"sqlite:///{tmp_path / 'h' / 'chatbot.db'}"


def test_chat_lists_a_clarifying_questions_choices_and_a_typed_number_takes_one(
    tiny_settings, sqlite_database, monkeypatch
):
    from sqlalchemy import select

    from chatbot.cli import dialogue as cli_dialogue
    from chatbot.store.dialogue_schema import DialogueReply
    from tests.test_customer_widget import MONEY_BACK, clarifying_services

    manager = clarifying_services(tiny_settings, sqlite_database).manager
    monkeypatch.setattr(cli_dialogue, "build_manager", lambda _settings: (manager, sqlite_database))
    result = CliRunner().invoke(main, ["chat"], input=f"{MONEY_BACK}\n2\n\n")
    assert result.exit_code == 0, result.output
    with sqlite_database.session() as session:
        asked, taken = session.scalars(select(DialogueReply).order_by(DialogueReply.id)).all()
    assert asked.decision == "clarify" and len(asked.options) >= 2
    # The question with its numbered choices, and how to answer it.
    assert asked.shown_text in result.stdout
    assert f"2. {asked.options[1]}" in result.stdout
    assert f"a number from 1 to {len(asked.options)}" in result.stderr
    assert "asked which topic is meant" in result.stderr
    # "2" was sent as the message; the manager took the second choice and answered it.
    assert taken.decision in ("answer", "answer_flagged")
    assert taken.reason.endswith("chosen by the customer")
    assert taken.shown_text in result.stdout
