"""The project's own errors. Library code raises these; only the CLI and the UI turn
them into messages and exit codes. Each message is one line a user can act on."""

from __future__ import annotations


class ChatbotError(Exception):
    """Base of every error the user is meant to read."""


class ConfigError(ChatbotError):
    """Bad settings, or a data directory that cannot be used."""


class StoreError(ChatbotError):
    """The database cannot be reached, is not migrated, or refused an operation."""


class ModelUnavailableError(ChatbotError):
    """A model package or file is missing or cannot be loaded."""


class InputError(ChatbotError):
    """A file or message the user supplied is malformed; says where (file, line)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line
        self.reason = message


class AccountError(ChatbotError):
    """An account operation was refused: unknown user, duplicate name, bad role."""


class LoginRefused(ChatbotError):
    """A login attempt failed: wrong name or password (one message for both, known and
    unknown names alike), or too many attempts (`LoginThrottled`)."""


class LoginThrottled(LoginRefused):
    """A login attempt refused unchecked: too many recent failures for this name, from
    this address, or both; `retry_after` says in how many seconds to try again."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, round(retry_after))
        super().__init__(f"too many login attempts; try again in {self.retry_after} seconds")


class AccessDenied(ChatbotError):
    """A request for something that is not the caller's: another customer's
    conversation, a console page without the role, a conversation another agent owns."""


class OrderSystemError(ChatbotError):
    """The order system cannot answer a lookup: unreachable, timed out, refused the
    request, or (for the store's own table) holds no orders at all. The dialogue hands
    the conversation to a person with the order number instead of guessing."""
