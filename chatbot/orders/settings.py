"""The `orders` settings section (`CHATBOT_ORDERS__*`): which order system an answer may
look a customer's order up in, and what an order number looks like.

Only declares and checks the values; `chatbot.orders.factory.open_connector` builds the
connector they name. Environment: e.g. `CHATBOT_ORDERS__CONNECTOR=none`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from chatbot.errors import ConfigError
from chatbot.orders.connector import DEFAULT_NUMBER_PATTERN, compile_number_pattern
from chatbot.settings_section import Section

ConnectorKind = Literal["none", "sql", "custom"]


class OrderSettings(Section):
    connector: ConnectorKind = Field(
        default="sql",
        description="none: no order system (order questions go to a person with the number); "
        "sql: the store's own `orders` table (`chatbot orders import`); "
        "custom: the connector that `factory` builds.",
    )
    number_pattern: str = Field(
        default=DEFAULT_NUMBER_PATTERN,
        description="Regex of an order number in its canonical form, e.g. NW-\\d{6}; customers' "
        "spellings (lower case, a space or nothing for the hyphen) are found too.",
    )
    factory: str | None = Field(
        default=None,
        description="With connector = custom: 'package.module:function', called with this "
        "section and the store's Database, returning the connector.",
    )

    @field_validator("number_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compile_number_pattern(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("factory")
    @classmethod
    def _factory(cls, value: str | None) -> str | None:
        if value is None:
            return None
        module, _, attribute = value.partition(":")
        if (
            not module
            or not attribute
            or not all(part.isidentifier() for part in (*module.split("."), *attribute.split(".")))
        ):
            raise ValueError(
                f"factory {value!r} must be 'package.module:function' (e.g. acme_orders:connector)"
            )
        return value

    @model_validator(mode="after")
    def _custom_needs_factory(self) -> OrderSettings:
        if self.connector == "custom" and self.factory is None:
            raise ValueError("connector = custom needs factory = 'package.module:function'")
        return self
