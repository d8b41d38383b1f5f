"""The `web` settings section: sessions, logins and the live parts of the web app.

Only the values and their checks live here, below every package that reads them
(`chatbot.web`, `chatbot.accounts`, `chatbot.support`'s recovery sweep, `chatbot.app`),
which is why it sits outside the `web` package: the assembled `chatbot.settings`
composes it and `chatbot.web` is above that. Environment: `CHATBOT_WEB__<KEY>` (e.g.
`CHATBOT_WEB__SESSION_SECRET`, `CHATBOT_WEB__COOKIE_SECURE=true` behind HTTPS).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from chatbot.settings_section import Section

# What a customer reads when the server died while answering them.
DEFAULT_INTERRUPTED_MESSAGE = (
    "Sorry, we were interrupted before I could answer your last message. "
    "A member of our team will reply here as soon as possible."
)


def origin_netloc(url: str) -> str:
    """host[:port] of an origin or URL, lower-cased; "" when it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.netloc.lower() if parts.scheme in ("http", "https") else ""


class WebSettings(Section):
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs session cookies; default: generated once into <home>/session_secret (mode 0600).",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long an agent's or admin's login lasts."
    )
    cookie_secure: bool = Field(
        default=False, description="Send session cookies over HTTPS only (set behind a TLS proxy)."
    )
    login_attempts: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Login attempts allowed per client per login_window_seconds.",
    )
    login_window_seconds: float = Field(
        default=60.0, gt=0, description="The window of the per-client login rate limit."
    )
    login_free_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Wrong passwords for one name from one address before each further try waits "
        "(1, 2, 4, ... seconds). Nothing ever locks an account.",
    )
    login_address_free_failures: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Failed logins from one address, over every name, before each further try waits.",
    )
    login_max_delay_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="The longest wait between two login attempts."
    )
    login_account_failures_per_hour: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Failed logins per hour for one name, over every address, before it waits.",
    )
    max_body_kb: int = Field(
        default=64,
        ge=8,
        le=10_240,
        description="Largest request body an anonymous route (the widget, /login, /logout) "
        "accepts; a customer's message is at most 4,000 characters.",
    )
    console_max_body_kb: int = Field(
        default=1024,
        ge=64,
        le=102_400,
        description="Largest request body of a console's own events (uploads: max_upload_mb).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Other origins (scheme://host[:port]) a console form may be sent from, "
        "besides the server's own (e.g. the public name behind a proxy that rewrites Host).",
    )
    poll_seconds: float = Field(
        default=2.0,
        gt=0.2,
        le=60,
        description="How often open pages look for new messages and queue changes.",
    )
    message_limit: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Messages one client address may send in the widget per message_window_seconds.",
    )
    message_window_seconds: float = Field(
        default=60.0, gt=0, description="The window of the per-client message rate limit."
    )
    handoff_limit: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description="Conversations one client address may hand to the agents per "
        "handoff_window_seconds (the button, or messages the assistant hands off).",
    )
    handoff_window_seconds: float = Field(
        default=600.0, gt=0, description="The window of the per-client hand-off limit."
    )
    interrupted_after_seconds: float = Field(
        default=180.0,
        ge=5,
        le=24 * 3600,
        description=(
            "A customer message still without a reply after this long (the server died while "
            "answering it) goes to the agents' queue as 'interrupted', with a notice to the customer; "
            "keep it above the longest reply."
        ),
    )
    recovery_sweep_seconds: float = Field(
        default=15.0,
        gt=0.1,
        le=3600,
        description="How often the serving process looks for customer messages left without a reply.",
    )
    interrupted_message: str = Field(
        default=DEFAULT_INTERRUPTED_MESSAGE,
        min_length=1,
        max_length=1000,
        description="What a customer whose message was interrupted reads in the chat.",
    )
    max_upload_mb: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Largest transcript file the admin console accepts.",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # An entry the Origin check cannot read would be ignored there without a word.

        unreadable = [origin for origin in value if not origin_netloc(origin)]
        if unreadable:
            raise ValueError(
                f"not an origin: {', '.join(map(repr, unreadable))}; "
                "write scheme://host[:port] with http or https, e.g. https://support.example.com"
            )
        return value
