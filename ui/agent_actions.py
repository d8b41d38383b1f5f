"""What the agent console's action buttons do: take over, approve and send, edit then
send, reject with a reason, reply freely, hand back to the assistant, release to the
queue; each done as the logged-in agent, with the line the console shows after it.

Where its job ends: what an action does, and who may do it, is `chatbot.support.review`'s;
who is logged in is `chatbot.web.auth`'s; redrawing the page after it is `ui.agent`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.store.enums import AgentActionKind
from chatbot.support import review

if TYPE_CHECKING:
    from chatbot.accounts.users import UserInfo
    from chatbot.web.auth import SignedRequest
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

ACTIONS = tuple(AgentActionKind)


@dataclass
class Outcome:
    done: bool
    line: str  # what happened, or why it was not done


def run_action(
    services: Services,
    agent: review.Agent,
    action: str,
    conversation_id: int | None,
    reply_id: int | None,
    text: str = "",
) -> Outcome:
    """Do `action` as `agent`; whether it was done, and the line to show."""
    if action not in ACTIONS:
        return Outcome(False, f"Unknown action {action!r}.")
    if conversation_id is None:
        return Outcome(False, "Open a conversation from the queue first.")
    db = services.database
    try:
        if action in ("approve", "edit", "reject"):
            if reply_id is None:
                return Outcome(False, "There is no suggestion to review in this conversation.")
            if action == "approve":
                result = review.approve(db, reply_id, agent, redactor=services.manager.redactor)
            elif action == "edit":
                result = review.edit(db, reply_id, agent, text, redactor=services.manager.redactor)
            else:
                result = review.reject(db, reply_id, agent, text)
        elif action == "take_over":
            result = review.take_over(db, conversation_id, agent)
        elif action == "reply":
            result = review.reply(
                db, conversation_id, agent, text, redactor=services.manager.redactor
            )
        elif action == "hand_back":
            result = review.hand_back(db, conversation_id, agent)
        else:
            result = review.release(db, conversation_id, agent)
    except AccessDenied as exc:
        return Outcome(False, f"Refused: {exc}.")
    except InputError as exc:
        return Outcome(False, f"Not done: {exc.reason}.")
    except ChatbotError as exc:
        log.warning("agent action %s on conversation %s failed: %s", action, conversation_id, exc)
        return Outcome(False, f"Failed: {exc}.")
    line = result.message[0].upper() + result.message[1:]
    if result.took_over and action != "take_over":
        line += f"; you now handle conversation {conversation_id}"
    return Outcome(True, line + ".")


def agent_of(services: Services, request: SignedRequest | None) -> UserInfo:
    """The logged-in agent behind a console event (AccessDenied if there is none)."""
    from chatbot.web.auth import current_user

    return current_user(services, request)
