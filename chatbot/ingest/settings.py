"""The `ingest` settings section (`CHATBOT_INGEST__*`): how files are read, redacted
and turned into pairs. Only declares and checks values; the importer uses them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from chatbot.settings_section import Section

RedactionKind = Literal["email", "phone", "card", "handle", "iban", "id", "address", "name"]


def _default_kinds() -> list[RedactionKind]:
    """Names and street addresses stay: slotting hides them in what is shared."""
    return ["email", "phone", "card", "handle", "iban", "id"]


class IngestSettings(Section):
    redact: bool = Field(
        default=True, description="Replace PII with typed placeholders before storing."
    )
    redact_kinds: list[RedactionKind] = Field(
        default_factory=_default_kinds,
        description="Which kinds of PII to replace.",
    )
    redact_allowlist: list[str] = Field(
        default_factory=list,
        description="The company's own values never redacted: e-mail addresses or domains, its hotline, bank "
        "account or handle (e.g. its support address).",
    )
    keep_original_text: bool = Field(
        default=False,
        description="Also keep the unredacted text in messages.original_text (never in pairs).",
    )
    max_message_chars: int = Field(
        default=20_000, ge=1, description="A longer message rejects its record."
    )
    context_turns: int = Field(
        default=6, ge=1, le=100, description="Preceding turns kept as a pair's context."
    )
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    collapse_near_duplicates: bool = Field(
        default=True, description="Keep one pair per normalised (question, reply)."
    )
    filter_trivial_pairs: bool = Field(
        default=True, description="Drop greeting-only, sign-off-only and bare 'DM us' replies."
    )
    constant_min_conversations: int = Field(
        default=3,
        ge=2,
        le=1_000_000,
        description="A value in agent replies (amount, phone, address, ID...) seen in at least this many conversations is "
        "a company constant and stays in replies; rarer ones are one customer's and become slots.",
    )
    batch_size: int = Field(
        default=500, ge=1, le=50_000, description="Conversations per bulk insert."
    )

    @model_validator(mode="after")
    def _fractions(self) -> IngestSettings:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction ({self.val_fraction}) + test_fraction ({self.test_fraction}) must be below 1"
            )
        return self
