"""`chatbot users`: the agents' and admins' accounts (the first admin is made with
`chatbot users add NAME --role admin`). Passwords are read from a hidden prompt or,
for scripts, one line of stdin (`--password-stdin`), never from the command line.
The account logic is `chatbot.accounts.users`'s."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from chatbot.cli import AppContext, F, emit_json, json_option, pass_app

if TYPE_CHECKING:  # imported by the commands themselves: `chatbot --help` stays fast
    from chatbot.accounts.users import UserInfo
    from chatbot.store.database import Database

# The same as chatbot.store.support_schema.USER_ROLES (a test keeps them equal); spelled
# out here so that `chatbot --help` does not import SQLAlchemy.
ROLES = ("agent", "admin")


@click.group("users")
def group() -> None:
    """Agents' and admins' accounts for the consoles."""


@contextmanager
def _database(app: AppContext) -> Iterator[Database]:
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    try:
        require_schema(database.engine)
        yield database
    finally:
        database.dispose()


def _password_stdin(func: F) -> F:
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of stdin (for scripts) instead of prompting.",
    )(func)


def _read_password(from_stdin: bool, username: str) -> str:
    from chatbot.accounts.passwords import check_password_policy
    from chatbot.errors import InputError

    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise click.ClickException(
                "--password-stdin: stdin gave no password (expected one line)"
            )
        return password

    def check(value: str) -> str:
        try:
            check_password_policy(value, username=username)
        except InputError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    return click.prompt(
        f"Password for {username}",
        hide_input=True,
        confirmation_prompt=True,
        value_proc=check,
        err=True,
    )


def _line(user: UserInfo) -> str:
    return f"{user.username} ({user.role})"


def _public(user: UserInfo) -> dict[str, Any]:
    payload = user.as_dict()
    payload.pop("session_epoch", None)  # part of the session cookies; of no use here
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in payload.items()
    }


@group.command("add")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="agent",
    show_default=True,
    help="What the account may open.",
)
@_password_stdin
@json_option
@pass_app
def add_command(
    app: AppContext, username: str, role: str, password_stdin: bool, as_json: bool
) -> None:
    """Create the account USERNAME (agents open /agent; admins /agent and /admin)."""
    from chatbot.accounts.users import add_user, check_username, find_user
    from chatbot.errors import AccountError

    check_username(username)
    with _database(app) as database:
        if find_user(database, username) is not None:  # before asking for a password
            raise AccountError(f"user {username!r} already exists")
        password = _read_password(password_stdin, username)
        user = add_user(database, username, password, role)
    if as_json:
        emit_json(_public(user))
    else:
        click.echo(f"added {_line(user)}")


@group.command("list")
@json_option
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """List the accounts, with role, state and last login."""
    from chatbot.accounts.users import list_users

    with _database(app) as database:
        users = list_users(database)
    if as_json:
        emit_json({"users": [_public(u) for u in users]})
        return
    if not users:
        click.echo("no accounts yet; create the first admin: chatbot users add NAME --role admin")
        return

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "never"

    click.echo(f"{'username':<24} {'role':<6} {'state':<24} {'last login':<17} created")
    for u in users:
        state = "active" if u.active else "disabled"
        click.echo(
            f"{u.username:<24} {u.role:<6} {state:<24} {when(u.last_login_at):<17} {when(u.created_at)}"
        )


@group.command("remove")
@click.argument("username")
@click.option("--force", is_flag=True, help="Remove even the last active admin.")
@json_option
@pass_app
def remove_command(app: AppContext, username: str, force: bool, as_json: bool) -> None:
    """Delete the account USERNAME; its sessions end at once (what it did stays on record)."""
    from chatbot.accounts.users import remove_user

    with _database(app) as database:
        user = remove_user(database, username, force=force)
    if as_json:
        emit_json({"removed": user.username, "role": user.role})
    else:
        click.echo(f"removed {_line(user)}")


@group.command("set-password")
@click.argument("username")
@_password_stdin
@json_option
@pass_app
def set_password_command(
    app: AppContext, username: str, password_stdin: bool, as_json: bool
) -> None:
    """Give USERNAME a new password (ends their sessions, lifts the login delays)."""
    from chatbot.accounts.users import get_user, set_password

    with _database(app) as database:
        name = get_user(database, username).username
        password = _read_password(password_stdin, name)
        user = set_password(database, name, password)
    if as_json:
        emit_json({"username": user.username, "password_changed": True})
    else:
        click.echo(f"password changed for {user.username}; their open sessions have ended")


@group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--force", is_flag=True, help="Demote even the last active admin.")
@json_option
@pass_app
def set_role_command(app: AppContext, username: str, role: str, force: bool, as_json: bool) -> None:
    """Make USERNAME an agent or an admin (ends their sessions)."""
    from chatbot.accounts.users import set_role

    with _database(app) as database:
        user = set_role(database, username, role, force=force)
    if as_json:
        emit_json(_public(user))
    else:
        click.echo(f"{user.username} is now {user.role}")


@group.command("unlock")
@click.argument("username")
@json_option
@pass_app
def unlock_command(app: AppContext, username: str, as_json: bool) -> None:
    """Lift the login delays USERNAME's wrong passwords built up."""
    from chatbot.accounts.users import unlock_user

    with _database(app) as database:
        user = unlock_user(database, username)
    if as_json:
        emit_json({"username": user.username, "unlocked": True})
    else:
        click.echo(f"unlocked {user.username}")
