"""Conversation acts: a customer message that is only a greeting, thanks, a goodbye, "are
you a bot?", or a yes / no. Recognised by patterns over the whole message (a greeting in
front of a real question is not an act: "hi, where is my parcel?" is a question), so the
dialogue manager can answer it in the company's own words instead of searching the
history for it or handing it to a person.

Where its job ends: it says which act a message is; the replies (mined from the
company's history at index time, `chatbot.indexing.answer_classes`, with the defaults
below) and the decision are the dialogue manager's.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Act(StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    GOODBYE = "goodbye"
    BOT_QUESTION = "bot_question"
    YES = "yes"
    NO = "no"


_PATTERNS: list[tuple[Act, str]] = [
    (
        Act.BOT_QUESTION,
        r"(are|r) (you|u) (a |an )?(real )?(bot|robot|human|person|machine|ai|computer|real|"
        r"automated|chat ?bot)( or (a |an )?(real )?(bot|robot|human|person|machine|ai))?"
        r"|am i (talking|chatting|speaking|writing) (to|with) (a |an )?(real )?"
        r"(bot|robot|human|person|machine|ai|computer|chat ?bot)"
        r"( or (a |an )?(real )?(bot|robot|human|person|machine|ai))?"
        r"|is (this|that|it) (a |an )?(real )?(bot|robot|human|person|machine|ai|chat ?bot|"
        r"automated|automatic)( (chat|service|conversation|system|reply|replies|response|"
        r"responses|message|messages))?"
        r"( or (a |an )?(real )?(bot|robot|human|person|machine|ai))?"
        r"|is (this|the) (chat|service|conversation) (automated|automatic|a bot|a robot|an ai|"
        r"a real person|real|a human)"
        r"|(who|what) am i (talking|chatting|speaking) (to|with)",
    ),
    (
        Act.THANKS,
        r"(many |big )?(thanks|thank (you|u)|thx|thnx|thanx|ty|cheers|ta|much appreciated|"
        r"appreciate it)( (so|very) much| a lot| a bunch| again| for (your|the) help| for "
        r"helping| for that)*"
        r"|(that|this|it|you) (solved|fixed|sorted|answered|answers|helped|helps|was helpful)"
        r"( it| that| everything| my (question|problem|issue))?( a lot)?"
        r"|(great|perfect|awesome|brilliant|excellent|wonderful|lovely|super|cool),? "
        r"(thanks|thank you|thx|that helps|that helped|that solved it)"
        r"|(that'?s|that is|it'?s|it is|you'?ve been|you were|you are|you'?re|that was|this was|"
        r"this is) (really |very |so |super |most |incredibly )?(helpful|useful|a (big |great )?"
        r"help)"
        r"|(very |really |super |most )?helpful|much obliged|(that'?s|that is) (great|perfect|"
        r"brilliant|awesome|lovely|excellent)",
    ),
    (
        Act.GOODBYE,
        r"(good ?)?bye( bye)?|see (you|ya)( later| soon)?|have a (nice|good|great) "
        r"(day|evening|weekend|one)|take care|(that'?s|that is) (all|everything|it)( for (now|today))?|"
        r"nothing else|no (more|other|further) questions|i'?m (all )?(good|done|set)( now)?|"
        r"talk (to you )?(later|soon)|cya",
    ),
    (
        Act.GREETING,
        r"(hi|hello|hey|hiya|heya|hallo|howdy|greetings|good (morning|afternoon|evening|day)|"
        r"morning|yo)( there| all| team| guys| everyone| folks)?"
        r"|(can|could|would) (you|u|someone|anyone) (please )?help( me)?( (please|out))?"
        r"|(i )?(need|want|would like) (some )?help( please)?|i have a (quick )?question"
        r"|(is )?(any ?one|some ?one|somebody) (there|here|around)|are you there",
    ),
    # longest first: the first alternative that fits a whole word wins
    (Act.NO, r"no,? (that'?s|it'?s) (ok|fine)|no thanks?( you)?|not really|nope|nah|no"),
    (
        Act.YES,
        r"yes please|please do|go ahead|that'?s right|of course|all right|alright|definitely|"
        r"absolutely|correct|right|yeah|yep|yup|yes|sure|okay|ok|ya|k",
    ),
]
# Whole words only: the lookarounds make the engine try a longer alternative ("nope" after "no").
_COMPILED = [
    (act, re.compile(rf"(?<![\w'])(?:{pattern})(?![\w'])", re.IGNORECASE))
    for act, pattern in _PATTERNS
]
# Words that may stand beside an act without making it a question ("ok thanks so much!").
_FILLER = re.compile(
    r"\b(ok|okay|oh|ah|well|so|and|then|again|great|perfect|awesome|brilliant|cool|nice|"
    r"lovely|super|fine|good|very|much|please|pls|plz|mate|guys|team|there|all|everyone|"
    r"folks|sir|madam|dear|just|really|you|u|a|lot|for|now|today|northwind|goods)\b",
    re.IGNORECASE,
)
_PUNCTUATION = re.compile(r"[^\w\s']+")
MAX_ACT_WORDS = 12


def recognise(message: str) -> list[Act]:
    """The acts a message consists of, in order of precedence (a bot question first,
    then thanks, goodbye, greeting, no, yes); empty when the message asks or says
    anything else."""
    text = " ".join(_PUNCTUATION.sub(" ", message.lower()).split())
    if not text or len(text.split()) > MAX_ACT_WORDS:
        return []
    found: list[Act] = []
    rest = f" {text} "
    for act, pattern in _COMPILED:
        matched = False
        for match in sorted(
            pattern.finditer(rest), key=lambda m: -(m.end() - m.start())
        ):  # longest first, whole words only
            start, end = match.span()
            if start == end or rest[start - 1] != " " or rest[end] != " ":
                continue
            if rest[start:end].strip():
                rest = rest[:start] + " " * (end - start) + rest[end:]
                matched = True
        if matched:
            found.append(act)
    if not found or _FILLER.sub(" ", rest).strip():
        return []
    return found


def main_act(acts: list[Act]) -> Act | None:
    """The act a reply answers when a message holds several ("ok thanks, bye": goodbye
    after thanks; "hi, are you a bot?": the bot question)."""
    if not acts:
        return None
    for act in (Act.BOT_QUESTION, Act.GOODBYE, Act.NO, Act.THANKS, Act.GREETING, Act.YES):
        if act in acts:
            return act
    return acts[0]


def default_replies(company: str | None, helps_with: str) -> dict[Act, str]:
    """What the assistant says to each act when the history has no words of its own for it."""
    team = f"the {company} team" if company else "the support team"
    return {
        Act.GREETING: f"Hello! How can I help you today? I can help with {helps_with}.",
        Act.THANKS: "You're welcome! Is there anything else I can help you with?",
        Act.GOODBYE: "Thanks for getting in touch. Have a nice day!",
        Act.BOT_QUESTION: (
            f"I'm the automated assistant of {team}. I can answer questions about "
            f"{helps_with}, and I can pass you to a person whenever you like."
        ),
        Act.YES: "Great! What would you like to know?",
        Act.NO: "All right. If anything else comes up, just write here. Have a nice day!",
    }
