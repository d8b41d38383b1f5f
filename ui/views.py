"""Named outputs for the pages' event handlers: a view model (a dataclass of what a panel
shows) and the panel's components (a dataclass of the same field names) are paired field
by field, so a handler returns `{component: value}` and nobody counts positions.

Gradio accepts such a dict from a handler whose outputs are a list of components: each
component listed but missing from the dict is left as it is. The helpers here fill every
output in anyway (a skip where nothing changes), so a handler's result names all its
outputs. What each panel shows is its own module's job (`ui.agent_queue`, ...); this
module only pairs fields with components.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from gradio.blocks import Block

# What a handler returns: new values (or property updates, or skips) by component.
Outputs: TypeAlias = "dict[Block, Any]"

# What `gr.skip()` returns, without importing Gradio here: "leave this component alone".
SKIP: dict[str, Any] = {"__type__": "update"}


def skip() -> dict[str, Any]:
    """A fresh "leave it as it is" update (the same value `gr.skip()` gives)."""
    return dict(SKIP)


def components(widgets: DataclassInstance) -> list[Block]:
    """A panel's components in field order: the outputs list of an event."""
    return [getattr(widgets, f.name) for f in fields(widgets)]


def updates(view: DataclassInstance, widgets: DataclassInstance) -> Outputs:
    """Each field of `view` as the value of `widgets`' component of the same name."""
    return {getattr(widgets, f.name): getattr(view, f.name) for f in fields(view)}


def unchanged(widgets: DataclassInstance) -> Outputs:
    """Every component of a panel left as it is."""
    return {component: skip() for component in components(widgets)}


def table(rows: list[list[str]], headers: list[str]) -> dict[str, Any]:
    """New rows for a `gr.Dataframe`, with its headers (the same as `gr.update(value=...)`)."""
    return {"__type__": "update", "value": {"data": rows or [], "headers": headers}}
