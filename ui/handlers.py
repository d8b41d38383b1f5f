"""What the pages' Gradio event handlers share: the shapes of the values they exchange
with components (chat messages, property updates, event options), and how a handler
tells Gradio which of its arguments Gradio fills in itself.

Only types and that one marker live here; building the pages and what their handlers
do is each page module's job (`ui.widget`, `ui.agent`, `ui.admin`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias, TypedDict, TypeVar

# What `gr.update(...)` and `gr.skip()` return: new properties for one output component
# (none at all for a skip), Gradio's own type for them.
Update: TypeAlias = dict[str, Any]

Handler = TypeVar("Handler", bound=Callable[..., object])


class ChatMessage(TypedDict):
    """One entry of a `gr.Chatbot` (messages format), its text already made safe."""

    role: Literal["user", "assistant"]
    content: str


class EventOptions(TypedDict):
    """Keyword options that several event listeners of a page share (a listener passes
    the rest of its options itself; a key is never given twice)."""

    api_visibility: Literal["public", "private", "undocumented"]


class QuietEventOptions(EventOptions):
    """The same, for events that show no progress while they run (polling)."""

    show_progress: Literal["full", "minimal", "hidden"]


class UnlimitedEventOptions(EventOptions):
    """The same, for quick events that any number of visitors may run at once."""

    concurrency_limit: int | None | Literal["default"]


def fills(**special: type) -> Callable[[Handler], Handler]:
    """Name the parameters of an event handler that Gradio fills in itself (a
    `gr.Request`, event data such as `gr.LikeData`), by their classes.

    Gradio finds them by reading the handler's annotations at run time. This package's
    annotations are strings (`from __future__ import annotations`) that name types known
    only to the type checker, so Gradio could not resolve them and would see no
    annotation at all; the handler's run-time annotations become exactly `special`."""

    def mark(handler: Handler) -> Handler:
        handler.__annotations__ = dict(special)
        return handler

    return mark


class ReplyEventOptions(EventOptions):
    """The same, for the events that write a reply (sharing one limit of replies at once)."""

    concurrency_limit: int | None | Literal["default"]
    concurrency_id: str
    trigger_mode: Literal["once", "multiple", "always_last"]
    show_progress: Literal["full", "minimal", "hidden"]
