#!/usr/bin/env python3
"""Generate the bundled demo support log for the fictional shop "Northwind Goods".

Northwind Goods is an invented online shop (homeware, kitchenware and small
electronics).  This script composes about 300 customer-service conversations
from hand-written templates and writes them to ``data/demo_shop.jsonl`` in the
project's transcript format (JSON Lines, UTF-8, one conversation per line)::

    {"id": "northwind-0001", "source": "northwind-demo",
     "turns": [{"role": "customer", "text": "..."},
               {"role": "agent", "text": "..."}],
     "meta": {"topic": "returns", "intent": "return_item", "channel": "chat"}}

Every shop fact the agents state comes from the constants in the "Shop
policies" section below, so the facts are identical in every conversation; the
assistant is trained and evaluated on them.  The variation comes from several
phrasings per customer intent and per agent answer, random names, order
numbers and products, casual customer language with occasional typos,
multi-turn follow-ups whose meaning depends on the history ("what about
express?"), hand-overs to a human, out-of-scope requests that are politely
declined, and a few fictional PII items (example.com / example.org addresses,
+44 7700 900xxx and +44 20 7946 0xxx numbers, which are reserved for fiction)
so that PII redaction can be exercised.

The output is deterministic: a fixed random seed, the standard library only,
and no dependence on hash ordering.  Running the script twice gives
byte-identical files.

Usage::

    python data/generate_demo.py            # writes data/demo_shop.jsonl
    python data/generate_demo.py OUT.jsonl  # writes somewhere else
"""

import json
import random
import sys
from pathlib import Path

SEED = 20240611
SOURCE = "northwind-demo"
DEFAULT_OUT = Path(__file__).resolve().parent / "demo_shop.jsonl"

# --------------------------------------------------------------------------
# Shop policies: the single source of every fact an agent states.
# --------------------------------------------------------------------------
SHOP = "Northwind Goods"
HELP_SITE = "https://help.northwindgoods.example"
SUPPORT_EMAIL = "support@northwindgoods.example"
RETURN_DAYS = 30  # days from delivery
WARRANTY = "2-year warranty"  # against manufacturing faults
FREE_DELIVERY_FROM = "40 EUR"  # standard delivery free over this amount
FREE_DELIVERY_CENTS = 4000
STANDARD_FEE = "4.95 EUR"  # standard delivery below the threshold
STANDARD_TIME = "3-5 working days"
EXPRESS_FEE = "6.95 EUR"  # always, also above the threshold
EXPRESS_CUTOFF = "14:00 CET"  # order by then, Monday to Friday
DISPATCH_TIME = "1 working day"  # orders usually leave the warehouse within
REFUND_TIME = "5-7 working days"
LINK_VALID = "24 hours"  # password reset and e-mail confirmation links
DELETE_TIME = "30 days"
INVESTIGATION_TIME = "3 working days"
NO_MOVEMENT_DAYS = "5 working days"
AUTH_RELEASE = "5 working days"  # pending card authorisations
GIFT_CARD_VALID = "3 years"
SUPPORT_HOURS = "Monday to Friday, 8:00-18:00 CET"
EMAIL_REPLY_TIME = "1 working day"

PATH_RETURN = "Orders > select the order > Return items"
PATH_TRACK = "Orders > select the order > Track parcel"
PATH_INVOICE = "Orders > select the order > Download invoice"
PATH_CANCEL = "Orders > select the order > Cancel order"
PATH_ADDRESS = "Orders > select the order > Edit delivery address"
PATH_EMAIL = "Settings > Account"
PATH_DELETE = "Settings > Account > Delete account"

# --------------------------------------------------------------------------
# Vocabulary for the variation.
# --------------------------------------------------------------------------
FIRST_NAMES = [
    "Anna",
    "Ben",
    "Chloe",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kiran",
    "Lena",
    "Marco",
    "Nadia",
    "Oliver",
    "Priya",
    "Quentin",
    "Rosa",
    "Samir",
    "Tess",
    "Ulrich",
    "Vera",
    "Wei",
    "Yusuf",
    "Zoe",
    "Aisha",
    "Bruno",
    "Carla",
    "Dmitri",
    "Emma",
    "Felix",
    "Hana",
    "Lukas",
    "Maya",
    "Niko",
    "Sofia",
    "Tom",
    "Amara",
    "Jakob",
    "Leila",
]
LAST_NAMES = [
    "Berg",
    "Okafor",
    "Martin",
    "Novak",
    "Costa",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Schneider",
    "Patel",
    "Kowalski",
    "Rossi",
    "Jensen",
    "Tanaka",
    "Brennan",
    "Fischer",
    "Ahmed",
    "Silva",
    "Dubois",
    "Nguyen",
    "Keller",
    "Murphy",
    "Virtanen",
    "Horvat",
    "Lopez",
    "Weber",
    "Mensah",
    "Ivanova",
]
# (name, price in cents, category)
PRODUCTS = [
    ("linen cushion cover", 1899, "homeware"),
    ("wool throw blanket", 5900, "homeware"),
    ("ceramic table lamp", 4950, "homeware"),
    ("set of 4 stoneware mugs", 2800, "homeware"),
    ("oak picture frame", 1450, "homeware"),
    ("scented soy candle", 1299, "homeware"),
    ("bamboo bath mat", 2250, "homeware"),
    ("wall clock", 3400, "homeware"),
    ("cast iron frying pan", 4499, "kitchenware"),
    ("chef's knife", 3950, "kitchenware"),
    ("set of 3 glass storage jars", 2199, "kitchenware"),
    ("enamel casserole dish", 6900, "kitchenware"),
    ("bamboo chopping board", 1799, "kitchenware"),
    ("stainless steel saucepan set", 8900, "kitchenware"),
    ("pour-over coffee set", 3299, "kitchenware"),
    ("silicone baking mat", 1199, "kitchenware"),
    ("electric kettle", 3499, "small electronics"),
    ("hand blender", 3999, "small electronics"),
    ("bluetooth speaker", 5499, "small electronics"),
    ("digital kitchen scale", 2499, "small electronics"),
    ("toaster", 4299, "small electronics"),
    ("LED desk lamp", 3799, "small electronics"),
    ("milk frother", 2999, "small electronics"),
    ("bedside alarm clock", 2699, "small electronics"),
]
EMAIL_DOMAINS = ["example.com", "example.org"]
WHEN_PAST = [
    "yesterday",
    "this morning",
    "on Monday",
    "two days ago",
    "on Tuesday",
    "last Thursday",
]

CHAT_GREETINGS = ["hi", "hello", "hey", "Hi there", "Hello,", "good morning", "hi!", "Hey there,"]

AGENT_CLOSINGS = [
    "Anything else I can help with?",
    "Is there anything else I can do for you?",
    "Let me know if there's anything else!",
    "Have a lovely day!",
    "Anything else I can help you with today?",
]
THANKS = [
    "thanks!",
    "Great, thank you!",
    "perfect, thanks",
    "ok thx",
    "Thanks a lot, that's all.",
    "cheers",
    "ok great, thank you so much",
    "That helps, thanks.",
    "brilliant thanks",
]
WELCOME = [
    "You're welcome! Have a great day.",
    "My pleasure! Take care.",
    "Happy to help. Enjoy the rest of your day!",
    "You're very welcome. Bye for now!",
    "Glad I could help! Have a nice day.",
]

# Casual rewrites applied to some customer turns (whole words only).
CASUAL = [
    ("you", "u"),
    ("please", "pls"),
    ("thanks", "thx"),
    ("I'm", "im"),
    ("don't", "dont"),
    ("can't", "cant"),
    ("it's", "its"),
    ("your", "ur"),
    ("because", "cuz"),
    ("okay", "ok"),
    ("didn't", "didnt"),
]


def eur(cents):
    return f"{cents // 100}.{cents % 100:02d} EUR"


# --------------------------------------------------------------------------
# Conversation assembly.
# --------------------------------------------------------------------------
class Ctx:
    """Per-conversation random details (customer, order, product)."""

    def __init__(self, rng, channel):
        self.rng = rng
        self.channel = channel
        self.first = rng.choice(FIRST_NAMES)
        self.last = rng.choice(LAST_NAMES)
        self.full = f"{self.first} {self.last}"
        self.order = f"NW-{rng.randint(100000, 999999)}"
        name, cents, cat = rng.choice(PRODUCTS)
        self.product, self.price, self.category = name, cents, cat
        self.a_product = ("an " if name[0] in "aeioAEIO" or name.startswith("LED") else "a ") + name
        self.when = rng.choice(WHEN_PAST)
        self.email = self.make_email()
        self.phone = self.make_phone()

    def make_email(self):
        rng = self.rng
        first, last = self.first.lower(), self.last.lower()
        local = rng.choice(
            [
                f"{first}.{last}",
                f"{first}{last[0]}",
                f"{first[0]}{last}",
                f"{first}_{last}{rng.randint(1, 99)}",
                f"{first}.{last}.home",
            ]
        )
        return f"{local}@{rng.choice(EMAIL_DOMAINS)}"

    def make_phone(self):
        rng = self.rng
        if rng.random() < 0.7:
            return f"+44 7700 900{rng.randint(0, 999):03d}"
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"

    def pick(self, options):
        return self.rng.choice(options)

    def chance(self, p):
        return self.rng.random() < p


class Conv:
    """Collects turns, enforces alternation and renders channel styling."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.turns = []  # [role, raw text, options]
        self.introduced = False  # customer told us their first name
        self.closing = True  # allow a closing line on the last agent turn

    # -- customer ---------------------------------------------------------
    def customer(self, text, casual=True):
        ctx = self.ctx
        raw = text
        assert not self.turns or self.turns[-1][0] == "agent"
        first = not self.turns
        # Casual language and typos touch only the message body, never the
        # e-mail salutation or signature.
        if casual and ctx.chance(0.3 if ctx.channel == "chat" else 0.08):
            text = casualize(text, ctx.rng)
        if ctx.channel == "chat":
            if first:
                r = ctx.rng.random()
                if r < 0.3:
                    intro = ctx.pick(
                        [
                            f"Hi, this is {ctx.first}.",
                            f"Hello, {ctx.first} here.",
                            f"Hi, my name is {ctx.full}.",
                            f"hey, its {ctx.first}.",
                        ]
                    )
                    text = f"{intro} {text}"
                    self.introduced = True
                elif r < 0.55:
                    text = f"{ctx.pick(CHAT_GREETINGS)} {lower_first(text)}"
        else:  # email
            if first:
                sig = ctx.full
                if ctx.chance(0.35):
                    sig += f"\n{ctx.phone}"
                text = (
                    f"{ctx.pick(['Hello,', 'Hi,', 'Dear Northwind Goods team,', 'Good afternoon,'])}"
                    f"\n\n{text}\n\n{ctx.pick(['Thanks,', 'Best regards,', 'Kind regards,', 'Thank you,'])}\n{sig}"
                )
            else:
                text = f"Hi again,\n\n{text}\n\n{ctx.first}"
            self.introduced = True
        self.turns.append(["customer", text, {"raw": raw}])

    # -- agent ------------------------------------------------------------
    def agent(self, text, closing=None):
        assert self.turns and self.turns[-1][0] == "customer"
        self.turns.append(["agent", text, {"closing": closing}])

    def thanks(self, p=0.35, welcome=WELCOME):
        """Optionally end with a customer thank-you and an agent goodbye."""
        if self.ctx.channel == "chat" and self.ctx.chance(p):
            self.customer(self.ctx.pick(THANKS), casual=False)
            self.agent(self.ctx.pick(welcome), closing=False)

    @property
    def last(self):
        """The last customer message as chosen from the templates (before styling)."""
        return self.turns[-1][2]["raw"]

    def exchanges(self):
        return sum(1 for t in self.turns if t[0] == "customer")

    # -- rendering --------------------------------------------------------
    def render(self):
        ctx = self.ctx
        out = []
        agent_idx = [i for i, t in enumerate(self.turns) if t[0] == "agent"]
        first_agent, last_agent = agent_idx[0], agent_idx[-1]
        close_last = ctx.chance(0.45)
        for i, (role, text, opts) in enumerate(self.turns):
            if role == "agent":
                closing = opts.get("closing")
                if closing is None:
                    closing = i == last_agent and self.closing and close_last
                if ctx.channel == "chat":
                    if i == first_agent:
                        if self.introduced:
                            greet = ctx.pick(
                                [
                                    f"Hi {ctx.first}! ",
                                    f"Hello {ctx.first}! ",
                                    f"Hi {ctx.first}, thanks for getting in touch. ",
                                    f"Thanks for reaching out, {ctx.first}. ",
                                ]
                            )
                        else:
                            greet = ctx.pick(
                                [
                                    "Hi there! ",
                                    "Hello! ",
                                    "",
                                    "",
                                    "Thanks for getting in touch. ",
                                    "Hi! ",
                                ]
                            )
                        text = greet + text
                    if closing:
                        text = f"{text} {ctx.pick(AGENT_CLOSINGS)}"
                else:
                    extra = ""
                    if closing:
                        extra = "\n\n" + ctx.pick(
                            [
                                "If you have any other questions, just reply to this e-mail.",
                                "Is there anything else we can help you with?",
                                f"You can also find more answers at {HELP_SITE}.",
                            ]
                        )
                    text = (
                        f"Hi {ctx.first},\n\n{text}{extra}\n\nKind regards,\n{SHOP} Customer Care"
                    )
            out.append({"role": role, "text": text})
        return out


def lower_first(text):
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text


def protected(word):
    return any(ch.isdigit() for ch in word) or "@" in word or "/" in word or "-" in word


def casualize(text, rng):
    """Make a customer message more casual: slang, lower case, one typo."""
    words = text.split(" ")
    for a, b in CASUAL:
        if rng.random() < 0.6:
            words = [b if w == a else (b.capitalize() if w == a.capitalize() else w) for w in words]
    # one letter swap or drop in a longer plain word
    if rng.random() < 0.7:
        cands = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
        if cands:
            i = rng.choice(cands)
            w = words[i]
            j = rng.randint(1, len(w) - 3)
            if rng.random() < 0.6:
                w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
            else:
                w = w[:j] + w[j + 1 :]
            words[i] = w
    text = " ".join(words)
    if rng.random() < 0.5:
        text = " ".join(w if protected(w) else w.lower() for w in text.split(" "))
    if rng.random() < 0.5 and text.endswith((".", "!")) and not text.endswith(".."):
        text = text[:-1]
    return text


# --------------------------------------------------------------------------
# Reusable agent answers (each states the facts in the same way).
# --------------------------------------------------------------------------
def a_refund_time(ctx):
    return ctx.pick(
        [
            f"Once the return arrives at our warehouse, we process the refund within {REFUND_TIME}. "
            f"It goes back to the original payment method, and we'll send you an e-mail when it's done.",
            f"Refunds take {REFUND_TIME} from the day your return arrives at our warehouse, "
            f"and the money goes back to the payment method you used for the order.",
            f"After the parcel reaches our warehouse, the refund is issued within {REFUND_TIME} "
            f"to your original payment method. You'll get a confirmation e-mail at each step.",
        ]
    )


def a_return_how(ctx):
    return ctx.pick(
        [
            f"You can return it within {RETURN_DAYS} days of delivery. Sign in, go to {PATH_RETURN}, "
            f"choose the item and print the prepaid return label, then drop the parcel off at any parcel shop. "
            f"Returns are free of charge.",
            f"No problem: you have {RETURN_DAYS} days from delivery to send it back. Under {PATH_RETURN} "
            f"you can pick the item and download a free return label; just drop the parcel at a parcel shop.",
            f"Our return window is {RETURN_DAYS} days from delivery, and returns are free. "
            f"Go to {PATH_RETURN}, print the prepaid label and hand the parcel in at any parcel shop. "
            f"Please send it back unused and in its original packaging if you can.",
        ]
    )


def a_express(ctx):
    return ctx.pick(
        [
            f"Express delivery costs {EXPRESS_FEE} and arrives the next working day if you order "
            f"before {EXPRESS_CUTOFF}, Monday to Friday. The express fee applies even on orders over {FREE_DELIVERY_FROM}.",
            f"With express it's the next working day for {EXPRESS_FEE}, as long as you order by "
            f"{EXPRESS_CUTOFF} on a working day. Unlike standard delivery, express is never free.",
            f"Express is {EXPRESS_FEE} (also above {FREE_DELIVERY_FROM}) and gets to you the next working day "
            f"for orders placed before {EXPRESS_CUTOFF}, Monday to Friday.",
        ]
    )


def a_standard(ctx):
    return ctx.pick(
        [
            f"Standard delivery takes {STANDARD_TIME}. It's free on orders over {FREE_DELIVERY_FROM} "
            f"and {STANDARD_FEE} below that.",
            f"Our standard delivery arrives within {STANDARD_TIME} and costs {STANDARD_FEE}, "
            f"or nothing at all if your order is over {FREE_DELIVERY_FROM}.",
            f"Standard shipping is {STANDARD_TIME}; it's free from {FREE_DELIVERY_FROM} upwards, "
            f"otherwise {STANDARD_FEE}.",
        ]
    )


def a_tracking(ctx):
    return ctx.pick(
        [
            f"As soon as your order ships we e-mail you a tracking link. You can also find it under {PATH_TRACK}.",
            f"The tracking link is in your dispatch e-mail, and it's also available under {PATH_TRACK}. "
            f"It can take up to 24 hours after dispatch before the first tracking update shows.",
            f"You'll find tracking under {PATH_TRACK} once the parcel has been dispatched; "
            f"we also send the link by e-mail.",
        ]
    )


def a_tracking_sent(ctx):
    return ctx.pick(
        [
            f"You'll find the tracking link in your dispatch e-mail and under {PATH_TRACK}.",
            f"The tracking link is in the dispatch e-mail we sent you, and also under {PATH_TRACK}.",
            f"You can follow it with the tracking link from your dispatch e-mail or under {PATH_TRACK}.",
        ]
    )


def a_handoff(ctx):
    return ctx.pick(
        [
            "Of course. I'm transferring you to a colleague from our support team now. "
            "They'll see this conversation, so you won't need to repeat anything.",
            "Sure, I'll hand you over to a member of our team. Please stay in the chat; "
            "they'll have the full conversation in front of them.",
            f"No problem, I'm passing you to a human colleague now. Our team is available {SUPPORT_HOURS}; "
            f"outside those hours you'll get a reply by e-mail within {EMAIL_REPLY_TIME}.",
            "Absolutely. I'm connecting you with one of our support agents now. "
            "Everything you've told me so far will be passed on.",
        ]
    )


# --------------------------------------------------------------------------
# Intents.  Each function fills a Conv and may add follow-up exchanges.
# --------------------------------------------------------------------------
def order_status(c, x):
    c.customer(
        x.pick(
            [
                f"Where is my order {x.order}?",
                f"Can you tell me the status of order {x.order}?",
                f"I ordered {x.a_product} {x.when} and haven't heard anything. Order number {x.order}.",
                f"whats happening with my order {x.order}",
                f"Has my order {x.order} shipped yet?",
                f"Could you check on {x.order} for me please? It's {x.a_product}.",
            ]
        )
    )
    status = x.pick(["processing", "dispatched", "dispatched", "delivered"])
    if status == "processing":
        c.agent(
            x.pick(
                [
                    f"Order {x.order} is still being prepared in our warehouse. Orders usually leave us within "
                    f"{DISPATCH_TIME}, and you'll get an e-mail with the tracking link as soon as it ships.",
                    f"I've checked {x.order}: it's in status Processing at the moment, so it hasn't left the warehouse yet. "
                    f"Most orders are dispatched within {DISPATCH_TIME}; we'll e-mail you the tracking link then.",
                ]
            )
        )
        if x.chance(0.5):
            follow = x.pick(["address", "add"])
            if follow == "address":
                c.customer(
                    x.pick(
                        [
                            "Can I still change the delivery address then?",
                            "oh good, so I can still change the address?",
                            "In that case, can the address still be changed?",
                        ]
                    )
                )
                c.agent(
                    x.pick(
                        [
                            f"Yes. As long as the order is Processing you can change it yourself under {PATH_ADDRESS}, "
                            f"or tell me the new address and I'll update it for you.",
                            f"Yes, while it's still Processing the address can be changed. You can do it under "
                            f"{PATH_ADDRESS}, or I can do it for you here.",
                        ]
                    )
                )
            else:
                c.customer(
                    x.pick(
                        [
                            "Can I still add something to it?",
                            "great, could I add another item to that order?",
                            f"Can I add a second {x.product} to it?",
                        ]
                    )
                )
                c.agent(
                    x.pick(
                        [
                            "Unfortunately we can't add new items to an existing order. The easiest way is to place a "
                            "second order; we can still change quantities or remove items while the first one is Processing.",
                            "I'm afraid adding items to an order that's already been placed isn't possible. Please place a "
                            "new order for the extra item. Removing items or changing quantities is possible while the order "
                            "is Processing.",
                        ]
                    )
                )
    elif status == "dispatched":
        c.agent(
            x.pick(
                [
                    f"Good news: order {x.order} was dispatched {x.when} and is on its way. {a_tracking_sent(x)}",
                    f"Your order {x.order} left our warehouse {x.when}. {a_tracking_sent(x)}",
                ]
            )
        )
        if x.chance(0.55):
            c.customer(
                x.pick(
                    [
                        "And how long does that take?",
                        "when will it arrive roughly?",
                        "ok and how long until it gets here?",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"It was sent with standard delivery, which takes {STANDARD_TIME}. "
                        f"The tracking page will show the expected delivery day once the carrier has scanned it.",
                        f"With standard delivery it's {STANDARD_TIME}. The tracking link will show a more exact date "
                        f"as the parcel moves.",
                    ]
                )
            )
            if x.chance(0.5):
                c.customer(
                    x.pick(
                        [
                            "What about express, can I still upgrade?",
                            "could I switch it to express?",
                            "what about express? I need it sooner",
                        ]
                    )
                )
                c.agent(
                    x.pick(
                        [
                            "Once an order has been dispatched we can't switch it to express, I'm sorry. "
                            "For future orders: " + a_express(x),
                            "I'm afraid an order can't be upgraded after it has left the warehouse. "
                            "Next time you can choose express at checkout: " + a_express(x),
                        ]
                    )
                )
    else:
        c.agent(
            x.pick(
                [
                    f"Our records show order {x.order} was delivered {x.when}. If you can't find it, please check "
                    f"with your neighbours and any safe place the carrier may have used, and let me know if it doesn't "
                    f"turn up.",
                    f"According to tracking, {x.order} was delivered {x.when}. Could you check with neighbours or "
                    f"your building's reception? If it's still missing, I'll open an investigation with the carrier.",
                ]
            )
        )
        if x.chance(0.5):
            c.customer(
                x.pick(
                    [
                        "I already checked, it's not here.",
                        "nope nothing with the neighbours either",
                        "I've looked everywhere, it never arrived.",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"I'm sorry about that. I've opened an investigation with the carrier; it takes up to "
                        f"{INVESTIGATION_TIME}. If the parcel isn't found, we'll send a replacement or give you a full "
                        f"refund, whichever you prefer.",
                        f"Thanks for checking. I've now started a carrier investigation, which takes up to "
                        f"{INVESTIGATION_TIME}. If it can't be located, you can choose between a free replacement and a "
                        f"full refund.",
                    ]
                )
            )
    c.thanks()


def change_order(c, x):
    p = x.product
    opening, replies = x.pick(
        [
            (
                f"I need to change my order {x.order}, can I remove the {p}?",
                [
                    "Yes please, remove it.",
                    "great, please take it out",
                    f"Please remove the {p} then.",
                ],
            ),
            (
                f"Is it possible to change the quantity on order {x.order}? I only need 1 instead of 2.",
                ["Just 1 please.", "please make it one", "One instead of two, thanks."],
            ),
            (
                f"I made a mistake in my order {x.order}. Can I still change it?",
                [
                    f"Please remove the {p}, I ordered it by accident.",
                    f"I don't need the {p} after all, please take it out.",
                ],
            ),
            (
                f"can i change something in an order i just placed? its {x.order}",
                [f"remove the {p} pls", f"take out the {p}"],
            ),
            (
                f"I'd like to swap the {p} in {x.order} for a different one.",
                [
                    f"Then please remove the {p} and I'll order the other one separately.",
                    f"ok, just take out the {p} then, I'll place a new order.",
                ],
            ),
        ]
    )
    c.customer(opening)
    processing = x.chance(0.65)
    if processing:
        if "swap" in opening:
            c.agent(
                f"Order {x.order} is still Processing, so we can still change it. We can't add new items to an "
                f"existing order, though, so a swap means removing the {p} here and ordering the other one "
                f"separately."
            )
        else:
            c.agent(
                x.pick(
                    [
                        f"Yes, order {x.order} is still Processing, so we can change it. I can remove items or reduce "
                        f"quantities for you. Shall I go ahead?",
                        f"Good timing: {x.order} hasn't been dispatched yet, so changes are still possible. "
                        f"Just tell me what to adjust. Please note we can't add new items to an existing order.",
                    ]
                )
            )
        c.customer(x.pick(replies))
        c.agent(
            x.pick(
                [
                    f"Done! I've updated {x.order}. You'll receive an updated order confirmation by e-mail, and if the "
                    f"total went down, the difference is refunded to your original payment method within {REFUND_TIME}.",
                    f"All set, your order {x.order} has been updated and a new confirmation is on its way to your inbox. "
                    f"Any difference in price is refunded within {REFUND_TIME}.",
                ]
            )
        )
        if x.chance(0.3):
            c.customer(x.pick(["and will it still ship on time?", "Does that delay the delivery?"]))
            c.agent(
                x.pick(
                    [
                        f"No, the change doesn't delay anything. Orders usually leave us within {DISPATCH_TIME}, "
                        f"and standard delivery takes {STANDARD_TIME} as usual.",
                        f"It won't be delayed. It should be dispatched within {DISPATCH_TIME} and then arrive within "
                        f"{STANDARD_TIME} with standard delivery.",
                    ]
                )
            )
    else:
        c.agent(
            x.pick(
                [
                    f"I'm sorry, order {x.order} has already been dispatched, so it can't be changed anymore. Once it "
                    f"arrives you can return anything you don't want within {RETURN_DAYS} days, free of charge.",
                    f"Unfortunately {x.order} has already left our warehouse, and dispatched orders can't be changed. "
                    f"You can return the item for free within {RETURN_DAYS} days of delivery under {PATH_RETURN}.",
                ]
            )
        )
        if x.chance(0.5):
            c.customer(
                x.pick(
                    [
                        "and how long does the refund take then?",
                        "How quickly would I get my money back?",
                    ]
                )
            )
            c.agent(a_refund_time(x))
    c.thanks()


def cancel_order(c, x):
    c.customer(
        x.pick(
            [
                f"Please cancel my order {x.order}.",
                f"I want to cancel {x.order}, I ordered the wrong {x.product}.",
                f"How do I cancel an order? It's {x.order}.",
                f"can u cancel order {x.order} i changed my mind",
                f"I'd like to cancel my order ({x.order}) if that's still possible.",
                f"Is it possible to cancel order {x.order}? I only placed it an hour ago.",
            ]
        )
    )
    processing = x.chance(0.6)
    if processing:
        c.agent(
            x.pick(
                [
                    f"The order is still Processing, so it can be cancelled. You can do it under {PATH_CANCEL}, "
                    f"or I can cancel it for you right away. Shall I go ahead?",
                    f"Yes, that's still possible because the order hasn't been dispatched. Would you like me to cancel "
                    f"it now? (You could also do it yourself under {PATH_CANCEL}.)",
                ]
            )
        )
        c.customer(x.pick(["Yes please.", "yes go ahead", "Yes, cancel it please.", "please do"]))
        c.agent(
            x.pick(
                [
                    "Done, the order is cancelled and you'll get a confirmation e-mail shortly. The refund has been "
                    "issued to your original payment method.",
                    "It's cancelled. A confirmation e-mail is on its way, and the payment is being refunded to the "
                    "method you paid with.",
                ]
            )
        )
        if x.chance(0.6):
            c.customer(
                x.pick(
                    [
                        "And how long does that take?",
                        "how long till i get the money back?",
                        "When will I see the refund?",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"The refund reaches your original payment method within {REFUND_TIME}.",
                        f"You should see it within {REFUND_TIME}, depending on your bank or PayPal.",
                    ]
                )
            )
    else:
        c.agent(
            x.pick(
                [
                    f"I'm sorry, the order has already been dispatched, so it can't be cancelled anymore. You can refuse "
                    f"the delivery, or return it for free within {RETURN_DAYS} days of delivery; either way you'll get a "
                    f"full refund.",
                    f"Unfortunately it's already on its way to you, and dispatched orders can't be cancelled. When it "
                    f"arrives, you can send it back free of charge within {RETURN_DAYS} days via {PATH_RETURN}, or simply "
                    f"refuse the parcel at the door.",
                ]
            )
        )
        if x.chance(0.5):
            c.customer(
                x.pick(["ok, and how long does that take?", "How long until I get refunded then?"])
            )
            c.agent(a_refund_time(x))
    c.thanks()


def return_item(c, x):
    c.customer(
        x.pick(
            [
                f"I'd like to return {x.a_product}.",
                f"How do I return something? I bought {x.a_product} and don't like it.",
                f"the {x.product} doesnt match my kitchen, can I send it back?",
                f"I want to return part of order {x.order}.",
                f"What's your return policy? I might send back the {x.product}.",
                f"Can I return the {x.product} from {x.order}? It's unused.",
            ]
        )
    )
    c.agent(a_return_how(x))
    r = x.rng.random()
    if r < 0.45:
        c.customer(
            x.pick(
                [
                    "And how long does the refund take?",
                    "and how long does that take?",
                    "when do I get my money back?",
                ]
            )
        )
        c.agent(a_refund_time(x))
        if x.chance(0.3):
            c.customer(
                x.pick(
                    [
                        "I paid with PayPal, does it go back there?",
                        "I paid with a gift card, what happens then?",
                    ]
                )
            )
            if "PayPal" in c.last:
                c.agent(
                    f"Yes, it goes back to your PayPal account within {REFUND_TIME} of the return arriving."
                )
            else:
                c.agent(
                    "Anything paid with a gift card is credited back to that gift card balance. If you "
                    "paid partly by card or PayPal, that part goes back there."
                )
    elif r < 0.7:
        c.customer(
            x.pick(
                [
                    "Do I have to pay for the return shipping?",
                    "is the return free?",
                    "what does the return cost me?",
                ]
            )
        )
        c.agent(
            x.pick(
                [
                    "No, returns are free. The return label from your account is prepaid.",
                    "It's free: the label you print under Orders is prepaid, so there's nothing to pay.",
                ]
            )
        )
    c.thanks()


def return_faulty_item(c, x):
    openings = [
        f"My {x.product} arrived broken.",
        f"the {x.product} came damaged, theres a crack in it",
        f"I received a damaged {x.product} (order {x.order}). What can I do?",
    ]
    if x.category == "small electronics":
        openings += [
            f"The {x.product} I ordered stopped working after a week. Order {x.order}.",
            f"I received a faulty {x.product} (order {x.order}). It won't switch on.",
        ]
    c.customer(x.pick(openings))
    c.agent(
        x.pick(
            [
                f"I'm sorry to hear that! Within {RETURN_DAYS} days of delivery you can return it for free under "
                f"{PATH_RETURN} and choose between a replacement and a full refund. A photo of the damage helps us, "
                f"but isn't required.",
                f"Sorry about that. You can send it back free of charge within {RETURN_DAYS} days of delivery via "
                f"{PATH_RETURN}; select 'damaged or faulty' as the reason and choose a replacement or a refund.",
            ]
        )
    )
    if x.chance(0.5):
        c.customer(
            x.pick(
                [
                    "What if it breaks after the 30 days?",
                    "and if it had been longer than 30 days?",
                    "What happens if something breaks later on?",
                ]
            )
        )
        c.agent(
            x.pick(
                [
                    f"All our products come with a {WARRANTY} against manufacturing faults. After the {RETURN_DAYS}-day "
                    f"return window, just e-mail {SUPPORT_EMAIL} with your order number and a photo, and we'll arrange "
                    f"a repair or replacement.",
                    f"Then our {WARRANTY} covers it: send your order number and a photo of the fault to {SUPPORT_EMAIL} "
                    f"and we'll sort out a repair or replacement.",
                ]
            )
        )
    elif x.chance(0.4):
        c.customer(x.pick(["How long will the replacement take?", "and how long does that take?"]))
        c.agent(
            x.pick(
                [
                    f"We send the replacement as soon as the return has been scanned by the carrier, with standard "
                    f"delivery ({STANDARD_TIME}) at no cost to you.",
                    f"The replacement ships once the carrier has scanned your return, and then takes {STANDARD_TIME} "
                    f"with free standard delivery.",
                ]
            )
        )
    c.thanks()


def return_window(c, x):
    days = x.pick([12, 20, 27, 33, 41, 45])
    c.customer(
        x.pick(
            [
                f"I got my {x.product} {days} days ago, can I still return it?",
                f"Is it too late to return something I received {days} days ago?",
                f"how many days do i have to return stuff? mine came {days} days ago",
            ]
        )
    )
    if days <= RETURN_DAYS:
        c.agent(
            x.pick(
                [
                    f"Yes, you're still within our {RETURN_DAYS}-day return window, which counts from the delivery date. "
                    f"You can start the return under {PATH_RETURN}.",
                    f"You're fine: returns are accepted up to {RETURN_DAYS} days after delivery, so you still have "
                    f"{RETURN_DAYS - days} days. Go to {PATH_RETURN} to print the free label.",
                ]
            )
        )
    else:
        c.agent(
            x.pick(
                [
                    f"I'm sorry, our return window is {RETURN_DAYS} days from delivery, so a regular return isn't "
                    f"possible anymore. If the item is faulty, it's still covered by our {WARRANTY}: e-mail "
                    f"{SUPPORT_EMAIL} with your order number and a photo.",
                    f"Unfortunately that's past our {RETURN_DAYS}-day return period. If there's a fault with the item, "
                    f"our {WARRANTY} applies, so please contact {SUPPORT_EMAIL} with your order number.",
                ]
            )
        )
        if x.chance(0.4):
            c.customer(
                x.pick(
                    [
                        "It's not faulty, I just don't like it. No exception?",
                        "can't you make an exception? its only a few days",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"I understand, and I'm sorry. We apply the {RETURN_DAYS}-day window to all orders, so I can't "
                        f"make an exception here.",
                        f"I'm sorry, but the {RETURN_DAYS}-day return window is the same for everyone, and I'm not able to "
                        f"extend it.",
                    ]
                )
            )
    c.thanks()


def refund_status(c, x):
    days = x.pick([2, 3, 4, 6, 9, 10])
    c.customer(
        x.pick(
            [
                f"I returned my {x.product} and still haven't got my refund. Order {x.order}.",
                f"Where is my refund for {x.order}?",
                f"my return for {x.order} arrived at your warehouse {days} working days ago but no refund yet??",
                f"When will I get my money back for the return on {x.order}?",
                f"I sent back order {x.order} last week. Has the refund been processed?",
            ]
        )
    )
    if "last week" in c.last:
        days = min(days, 4)
    arrived = x.chance(0.7) or "warehouse" in c.last
    if arrived and days <= 7:
        c.agent(
            x.pick(
                [
                    f"Your return for {x.order} arrived at our warehouse {days} working days ago. Refunds are processed "
                    f"within {REFUND_TIME} after arrival, so it should reach your original payment method very soon. "
                    f"You'll get an e-mail as soon as it's issued.",
                    f"I can see the return for {x.order} was received {days} working days ago. We refund within "
                    f"{REFUND_TIME} of the return arriving, so you're still within that time; you'll get an e-mail when "
                    f"the money is on its way.",
                ]
            )
        )
    elif arrived:
        c.agent(
            x.pick(
                [
                    f"I'm sorry for the wait. The return for {x.order} arrived {days} working days ago, which is longer "
                    f"than our usual {REFUND_TIME}. I've escalated it to our payments team and you'll receive a "
                    f"confirmation e-mail once the refund is issued.",
                    f"You're right, that's taking longer than our usual {REFUND_TIME}. I've flagged the refund for "
                    f"{x.order} as urgent with our payments team, and you'll get an e-mail as soon as it's issued.",
                ]
            )
        )
    else:
        c.agent(
            x.pick(
                [
                    f"Your return for {x.order} hasn't reached our warehouse yet. "
                    + a_refund_time(x)
                    + " You can follow the return parcel with the tracking number on your drop-off receipt.",
                    f"We haven't received the return for {x.order} yet; it's probably still with the carrier. "
                    + a_refund_time(x),
                ]
            )
        )
    if x.chance(0.35):
        c.customer(
            x.pick(
                [
                    "Will it go back to my card?",
                    "does the money go to paypal or my card?",
                    "Can I get it as store credit instead?",
                ]
            )
        )
        if "store credit" in c.last:
            c.agent(
                "Refunds always go back to the original payment method, so we can't convert them into "
                "store credit, I'm afraid."
            )
        else:
            c.agent(
                x.pick(
                    [
                        "It goes back to whichever payment method you used for the order: card, PayPal or gift card.",
                        "The refund always goes to the original payment method, so if you paid by card it goes back "
                        "to that card, and if you used PayPal it goes to your PayPal account.",
                    ]
                )
            )
    c.thanks()


def refund_method(c, x):
    c.customer(
        x.pick(
            [
                "Can I get my refund to a different card? My old one expired.",
                "I paid with a gift card, how do I get refunded?",
                "Will the refund go back to PayPal?",
                "Can you refund me by bank transfer instead?",
                "Can I get my refund as cash?",
            ]
        )
    )
    q = c.last
    if "gift card" in q:
        c.agent(
            f"Anything paid with a gift card is refunded to the gift card balance, within {REFUND_TIME} "
            f"after your return arrives. Gift cards stay valid for {GIFT_CARD_VALID} from purchase."
        )
    elif "PayPal" in q or "paypal" in q:
        c.agent(
            x.pick(
                [
                    f"Yes, if you paid with PayPal the refund goes back to your PayPal account, within {REFUND_TIME} "
                    f"after the return arrives at our warehouse.",
                    f"It does. Refunds always go to the original payment method, so it'll show up in your PayPal account "
                    f"within {REFUND_TIME} of the return reaching us.",
                ]
            )
        )
    elif "expired" in q:
        c.agent(
            x.pick(
                [
                    "We can only refund to the original payment method, but don't worry: when a card has expired, "
                    "banks normally pass the refund on to your new card or account. If it doesn't appear, your bank can "
                    "trace it for you.",
                    "Refunds always go back to the original card. Banks usually forward refunds from an expired card to "
                    "the replacement card on the same account; if you don't see it, please ask your bank.",
                ]
            )
        )
    else:
        c.agent(
            x.pick(
                [
                    f"I'm sorry, we can't do that. Refunds always go back to the original payment method (card, PayPal "
                    f"or gift card), within {REFUND_TIME} after your return arrives.",
                    f"Unfortunately not: refunds are only made to the payment method used for the order, and they take "
                    f"{REFUND_TIME} after the return reaches our warehouse.",
                ]
            )
        )
    if x.chance(0.4):
        c.customer(x.pick(["and how long does that take?", "How long does that usually take?"]))
        c.agent(
            x.pick(
                [
                    f"{REFUND_TIME} from the day the return arrives at our warehouse. You'll get an e-mail when it's issued.",
                    f"It takes {REFUND_TIME} after your return reaches us, and we'll e-mail you when it's done.",
                ]
            )
        )
    c.thanks()


def delivery_time(c, x):
    c.customer(
        x.pick(
            [
                "How long does delivery take?",
                f"If I order {x.a_product} today, when will it arrive?",
                "what are your delivery times",
                "How fast do you ship?",
                f"I need {x.a_product} by the weekend. How long is shipping?",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"Standard delivery takes {STANDARD_TIME}. If you need it faster, express arrives the next working day.",
                f"Orders usually leave our warehouse within {DISPATCH_TIME}, and standard delivery takes {STANDARD_TIME} "
                f"in total. There's also express delivery for the next working day.",
                f"With standard delivery it's {STANDARD_TIME}; express gets it to you the next working day.",
            ]
        )
    )
    if x.chance(0.65):
        c.customer(
            x.pick(
                [
                    "what about express?",
                    "And what does express cost?",
                    "What about express, is that free too?",
                    "how much is the faster one?",
                ]
            )
        )
        c.agent(a_express(x))
        if x.chance(0.35):
            c.customer(
                x.pick(
                    [
                        "And if I order on Saturday?",
                        "what if i order at 4pm on a friday?",
                        "and if I order after 2pm?",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"Express orders placed after {EXPRESS_CUTOFF} or at the weekend are dispatched on the next "
                        f"working day, so they arrive the working day after that.",
                        f"Then it counts as ordered on the next working day: orders after {EXPRESS_CUTOFF} or on weekends "
                        f"are sent the next working day and delivered the working day after.",
                    ]
                )
            )
    c.thanks()


def delivery_cost(c, x):
    variant = x.pick(["general", "basket", "basket"])
    if variant == "general":
        c.customer(
            x.pick(
                [
                    "How much is delivery?",
                    "do you charge for shipping?",
                    "Is delivery free?",
                    "What are your shipping costs?",
                ]
            )
        )
        c.agent(a_standard(x))
    else:
        c.customer(
            x.pick(
                [
                    f"I'm buying {x.a_product} for {eur(x.price)}. Do I have to pay for delivery?",
                    f"my basket is just {x.a_product} ({eur(x.price)}), is shipping free?",
                    f"Would shipping be free on {x.a_product}? It's {eur(x.price)}.",
                ]
            )
        )
        if x.price > FREE_DELIVERY_CENTS:
            c.agent(
                x.pick(
                    [
                        f"Good news: your order is over {FREE_DELIVERY_FROM}, so standard delivery ({STANDARD_TIME}) is free.",
                        f"Standard delivery is free for orders over {FREE_DELIVERY_FROM}, so you won't pay anything for "
                        f"shipping. It takes {STANDARD_TIME}.",
                    ]
                )
            )
        else:
            gap = FREE_DELIVERY_CENTS - x.price
            c.agent(
                x.pick(
                    [
                        f"Standard delivery is free on orders over {FREE_DELIVERY_FROM}. Your basket is {eur(x.price)}, "
                        f"so delivery would be {STANDARD_FEE}; add items worth more than {eur(gap)} and it's free.",
                        f"For orders under {FREE_DELIVERY_FROM}, standard delivery costs {STANDARD_FEE}, so it would apply "
                        f"to your {eur(x.price)} basket. Spend just over {eur(gap)} more and shipping is free.",
                    ]
                )
            )
    if x.chance(0.6):
        c.customer(
            x.pick(
                [
                    "what about express?",
                    "And express?",
                    "How much is express delivery?",
                    "and is express also free over 40?",
                ]
            )
        )
        c.agent(a_express(x))
        if x.chance(0.3):
            c.customer(
                x.pick(
                    [
                        "and how long does standard take again?",
                        "ok and the normal one takes how long?",
                    ]
                )
            )
            c.agent(f"Standard delivery takes {STANDARD_TIME}.")
    c.thanks()


def track_parcel(c, x):
    c.customer(
        x.pick(
            [
                "How can I track my parcel?",
                f"Where do I find the tracking number for {x.order}?",
                "i cant find my tracking link",
                f"Is there a tracking number for my order {x.order}?",
                "The tracking link doesn't show anything yet, is that normal?",
            ]
        )
    )
    q = c.last
    if "doesn't show" in q:
        c.agent(
            x.pick(
                [
                    "Yes, that's normal right after dispatch. It can take up to 24 hours until the carrier's first scan "
                    "shows in tracking. Please check again tomorrow.",
                    "Don't worry, that happens. The first tracking update can take up to 24 hours after the parcel has "
                    "left our warehouse.",
                ]
            )
        )
    else:
        c.agent(a_tracking(x))
    if x.chance(0.4):
        if "doesn't show" in q:
            c.customer(
                x.pick(
                    [
                        "It still says 'label created' after two days.",
                        "ok but it's been two days already",
                    ]
                )
            )
        else:
            c.customer(
                x.pick(
                    [
                        "It still says 'label created' after two days.",
                        "tracking hasn't moved in a week",
                        "the tracking hasn't updated for 6 working days now",
                    ]
                )
            )
        c.agent(
            x.pick(
                [
                    f"Two days without an update can happen, for example over a weekend. If tracking shows no movement "
                    f"for {NO_MOVEMENT_DAYS}, we open an investigation with the carrier, so please get back to us then.",
                    f"That can still be normal. We open a carrier investigation once tracking hasn't moved for "
                    f"{NO_MOVEMENT_DAYS}; if nothing changes by then, just contact us again.",
                ]
            )
            if "two days" in c.last
            else x.pick(
                [
                    f"That's too long. I've opened an investigation with the carrier; it takes up to {INVESTIGATION_TIME}. "
                    f"If the parcel can't be found, we'll send a replacement or refund you in full, your choice.",
                    f"I'm sorry, no movement for that long isn't normal. I've started a carrier investigation (up to "
                    f"{INVESTIGATION_TIME}); if the parcel isn't located, you can have a free replacement or a full refund.",
                ]
            )
        )
    c.thanks()


def lost_parcel(c, x):
    c.customer(
        x.pick(
            [
                f"Tracking says my parcel {x.order} was delivered but I never got it.",
                f"My order {x.order} seems to be lost. Tracking hasn't changed for over a week.",
                "my package never arrived!!",
                f"The {x.product} I ordered never showed up. What now?",
                f"I think the courier lost my parcel ({x.order}). Can you help? You can reach me on {x.phone}.",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"I'm sorry about that. Could you first check with your neighbours and any safe place the carrier might "
                f"have used? If it doesn't turn up, we'll open an investigation with the carrier, which takes up to "
                f"{INVESTIGATION_TIME}. If the parcel isn't found, you choose between a replacement and a full refund.",
                f"Sorry to hear that! We'll open a carrier investigation (it takes up to {INVESTIGATION_TIME}). If the "
                f"parcel can't be found, we'll send a replacement or refund you in full, whichever you prefer.",
            ]
        )
    )
    if x.chance(0.55):
        c.customer(
            x.pick(
                ["and how long does that take?", "Ok. How long will that take?", "and then what?"]
            )
        )
        if "then what" in c.last:
            c.agent(
                "Once the investigation is closed, we'll e-mail you. If the parcel is lost, just reply with "
                "whether you'd like a replacement or a refund and we'll handle it straight away."
            )
        else:
            c.agent(
                x.pick(
                    [
                        f"The investigation takes up to {INVESTIGATION_TIME}. We'll e-mail you with the result, and if "
                        f"it's lost, a replacement is sent right away or the refund reaches you within {REFUND_TIME}.",
                        f"Up to {INVESTIGATION_TIME} for the carrier investigation. After that we send a replacement "
                        f"immediately, or refund you within {REFUND_TIME} if you prefer the money back.",
                    ]
                )
            )
        if x.chance(0.4):
            c.customer(
                x.pick(
                    [
                        "I'd prefer a refund if it's lost.",
                        "a replacement please if it comes to that",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        "Noted, I've added that to the case, so we'll go ahead with your choice if the parcel isn't found.",
                        "Got it. I've recorded your preference on the investigation.",
                    ]
                )
            )
    c.thanks()


def wrong_address(c, x):
    street = x.pick(["Harbour Street", "Maple Lane", "Station Road", "Mill Close", "Orchard Way"])
    num = x.rng.randint(2, 98)
    c.customer(
        x.pick(
            [
                f"I entered the wrong address for order {x.order}!",
                f"I typed the wrong house number, it should be {num} {street}. Order {x.order}.",
                f"can i change the delivery address? i moved. order {x.order}",
                f"Oops, I sent {x.order} to my old address. Can you fix it?",
            ]
        )
    )
    processing = x.chance(0.5)
    if processing and "should be" in c.last:
        c.agent(
            x.pick(
                [
                    f"Good news: {x.order} is still Processing, so I've changed the delivery address to {num} {street}. "
                    f"You'll get an updated confirmation by e-mail.",
                    f"No problem, the order hasn't been dispatched yet. I've updated the address on {x.order} to "
                    f"{num} {street}, and a new confirmation is on its way to your inbox.",
                ]
            )
        )
    elif processing:
        c.agent(
            x.pick(
                [
                    f"No problem, {x.order} is still Processing, so the address can be changed. You can do it under "
                    f"{PATH_ADDRESS}, or send me the correct address and I'll update it.",
                    f"Good news: the order hasn't been dispatched yet. I can update the address for you, or you can change "
                    f"it yourself under {PATH_ADDRESS}.",
                ]
            )
        )
        if x.chance(0.6):
            c.customer(
                x.pick(
                    [
                        f"It's {num} {street}, please.",
                        f"please change it to {num} {street}",
                        f"The right one is {num} {street}. My number is {x.phone} in case the driver "
                        f"needs it.",
                    ]
                )
            )
            c.agent(
                x.pick(
                    [
                        f"Done, the delivery address for {x.order} is now {num} {street}. You'll get an updated "
                        f"confirmation by e-mail.",
                        f"Updated! {x.order} will go to {num} {street}. A confirmation e-mail is on its way.",
                    ]
                )
            )
    else:
        c.agent(
            x.pick(
                [
                    f"I'm sorry, {x.order} has already been dispatched, so we can't change the address in our system. "
                    "I've asked the carrier to redirect it, but that isn't guaranteed. If it comes back to us, we'll "
                    "resend it free of charge or refund you in full.",
                    "Unfortunately the parcel is already on its way. I've asked the carrier to redirect it to the right "
                    "address, though they can't always do that. If it's returned to us, we'll send it again at no cost "
                    "or give you a full refund.",
                ]
            )
        )
        if x.chance(0.4):
            c.customer(x.pick(["How will I know if the redirect worked?", "and how will i know?"]))
            c.agent(
                f"The tracking link will show the new address once the carrier accepts the redirect. You can "
                f"check it any time under {PATH_TRACK}."
            )
    c.thanks()


def password_reset(c, x):
    c.customer(
        x.pick(
            [
                "I forgot my password.",
                "How do I reset my password?",
                "i cant log in, forgot my password",
                f"I can't sign in to my account, my e-mail is {x.email}.",
                "Can you send me a new password?",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"On the sign-in page, click 'Forgot password?' and enter your account e-mail. We'll send you a reset "
                f"link that's valid for {LINK_VALID}.",
                f"You can reset it yourself: choose 'Forgot password?' on the sign-in page and we'll e-mail you a link to "
                f"set a new password. The link works for {LINK_VALID}. For security reasons we can't see or send passwords.",
                f"Please use 'Forgot password?' on the sign-in page. You'll receive a password reset link by e-mail, valid "
                f"for {LINK_VALID}.",
            ]
        )
    )
    if x.chance(0.5):
        c.customer(
            x.pick(
                [
                    "I didn't get the email.",
                    "the link doesnt work",
                    "It says the link has expired.",
                    "no email arrived",
                ]
            )
        )
        q = c.last.lower()
        if "expired" in q or "link" in q:
            c.agent(
                x.pick(
                    [
                        f"Reset links expire after {LINK_VALID} and only work once. Please request a new one via "
                        f"'Forgot password?' and use the newest e-mail.",
                        f"That usually means the link is older than {LINK_VALID} or was already used. Just request a fresh "
                        f"link from the sign-in page.",
                    ]
                )
            )
        else:
            c.agent(
                x.pick(
                    [
                        "Please check your spam or junk folder, and make sure you used the e-mail address your account is "
                        "registered with. If nothing arrives within a few minutes, request the link again.",
                        "It can take a few minutes. Please also check your spam folder and that the address is the one on "
                        "your account. You can request a new link at any time.",
                    ]
                )
            )
    c.thanks()


def change_email(c, x):
    new = x.make_email()
    while new == x.email:
        new = x.make_email()
    c.customer(
        x.pick(
            [
                "How do I change the e-mail address on my account?",
                f"I want to change my email to {new}.",
                f"Can you update my e-mail? Old one is {x.email}, new one is {new}.",
                "i have a new email address, how do i update it",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"You can change it under {PATH_EMAIL}. Enter the new address and we'll send a confirmation link to it; "
                f"the change takes effect once you click the link (it's valid for {LINK_VALID}).",
                f"Go to {PATH_EMAIL} and edit the e-mail address there. We'll e-mail a confirmation link to the new "
                f"address, and the change is active once you've clicked it within {LINK_VALID}.",
                f"For security, e-mail changes are done in your account: {PATH_EMAIL}. You'll get a confirmation link at "
                f"the new address, valid for {LINK_VALID}.",
            ]
        )
    )
    if x.chance(0.5):
        c.customer(
            x.pick(
                [
                    "and how long does that take?",
                    "Will my orders move over to the new email?",
                    "can't you just change it for me?",
                ]
            )
        )
        q = c.last
        if "how long" in q:
            c.agent(
                "It's immediate: as soon as you click the confirmation link, your account uses the new address."
            )
        elif "orders" in q:
            c.agent(
                "Yes, it's the same account, so your order history, invoices and saved addresses all stay. "
                "Only the address we send e-mails to changes."
            )
        else:
            c.agent(
                f"I'm sorry, for security reasons the change has to be made by you in {PATH_EMAIL}, so that "
                "it's confirmed from the new address."
            )
    c.thanks()


def delete_account(c, x):
    c.customer(
        x.pick(
            [
                "I want to delete my account.",
                "How can I close my Northwind Goods account?",
                f"please delete my account and all my data, my email is {x.email}",
                "Can I delete my account?",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"You can do that under {PATH_DELETE}. We'll send a confirmation link by e-mail, and the deletion is "
                f"completed within {DELETE_TIME}. Any open orders need to be completed first.",
                f"Sorry to see you go! Go to {PATH_DELETE} and confirm via the e-mail we send you. Your account and personal "
                f"data are deleted within {DELETE_TIME}; we only keep invoices as required by tax law.",
            ]
        )
    )
    if x.chance(0.55):
        c.customer(
            x.pick(
                [
                    "and how long does that take?",
                    "What happens to my gift card balance?",
                    "Do you keep any of my data?",
                ]
            )
        )
        q = c.last
        if "how long" in q:
            c.agent(
                f"The deletion is completed within {DELETE_TIME} after you confirm it. We'll e-mail you "
                "when it's done."
            )
        elif "gift card" in q:
            c.agent(
                "Any gift card balance saved to your account is lost when the account is deleted, so we "
                "recommend using it first."
            )
        else:
            c.agent(
                f"We delete your account and personal data within {DELETE_TIME}. The only thing we keep is "
                "invoices, because tax law requires it."
            )
    c.thanks()


def card_declined(c, x):
    c.customer(
        x.pick(
            [
                "My card keeps getting declined at checkout.",
                "payment failed, why??",
                "Why was my card declined? It works everywhere else.",
                f"I'm trying to buy {x.a_product} but my card is declined.",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                "Sorry about that! Please check the card number, expiry date and security code, and that the billing "
                "address matches the one your bank has. Some banks also ask you to confirm the payment in their app. "
                "We can't see why a bank declines a payment, so if it still fails, your bank can tell you more.",
                "Payments are usually declined by the bank, not by us. Please double-check your card details and "
                "billing address, confirm the payment in your banking app if asked, and make sure there are enough funds. "
                "You can also pay with PayPal or a gift card instead.",
            ]
        )
    )
    if x.chance(0.45):
        c.customer(
            x.pick(["What other ways can I pay?", "can I pay another way?", "do you take paypal?"])
        )
        c.agent(
            x.pick(
                [
                    "We accept credit and debit cards (Visa, Mastercard and American Express), PayPal and "
                    f"{SHOP} gift cards.",
                    "You can pay with PayPal or a Northwind Goods gift card, besides Visa, Mastercard or American "
                    "Express cards.",
                ]
            )
        )
        if x.chance(0.3):
            c.customer(x.pick(["And bank transfer?", "what about paying on invoice / later?"]))
            c.agent(
                "I'm sorry, we don't offer bank transfer or pay-later options. Only cards, PayPal and gift "
                "cards are available."
            )
    c.thanks()


def double_charge(c, x):
    c.customer(
        x.pick(
            [
                f"I was charged twice for order {x.order}!",
                "my bank shows 2 payments for one order",
                f"You took the money twice for my {x.product}. Order {x.order}.",
                "I see a double charge on my card statement, please help.",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                f"Sorry for the worry! Usually one of the two is a pending authorisation that your bank releases within "
                f"{AUTH_RELEASE}. If you still see two completed charges after that, send your order number and a "
                f"screenshot of the statement to {SUPPORT_EMAIL} and we'll refund the duplicate within {REFUND_TIME}.",
                f"In most cases the second amount is only a pending authorisation, which disappears within "
                f"{AUTH_RELEASE}. If both charges are still there after that, please e-mail {SUPPORT_EMAIL} with the order "
                f"number and a screenshot, and we'll refund the duplicate within {REFUND_TIME}.",
            ]
        )
    )
    if x.chance(0.4):
        c.customer(
            x.pick(
                [
                    "It's been over a week and both are still there.",
                    "both say completed, not pending",
                ]
            )
        )
        c.agent(
            x.pick(
                [
                    f"Thanks for checking. Please send the order number and a screenshot of your statement to "
                    f"{SUPPORT_EMAIL}. Our payments team will refund the duplicate charge within {REFUND_TIME}.",
                    f"In that case it's a real duplicate, sorry! E-mail a screenshot of the statement and your order "
                    f"number to {SUPPORT_EMAIL}, and the extra payment will be refunded within {REFUND_TIME}.",
                ]
            )
        )
    c.thanks()


def paypal(c, x):
    c.customer(
        x.pick(
            [
                "Can I pay with PayPal?",
                "do you accept paypal",
                "How does paying with PayPal work on your site?",
                "My PayPal payment didn't go through, what should I do?",
            ]
        )
    )
    if "didn't" in c.last:
        c.agent(
            x.pick(
                [
                    "Sorry about that. If PayPal didn't confirm the payment, the order isn't placed and nothing is charged. "
                    "Please try again and make sure you complete the PayPal login and confirmation; if it fails again, "
                    "PayPal's own support can see the reason.",
                    "If the PayPal window closed before the payment was confirmed, no order was created and you haven't "
                    "been charged. Please try once more, or pay by card or gift card instead.",
                ]
            )
        )
    else:
        c.agent(
            x.pick(
                [
                    "Yes! Choose PayPal at checkout and you'll be taken to PayPal to log in and confirm the payment.",
                    "We do accept PayPal. Select it as the payment method at checkout, log in to PayPal and confirm, and "
                    "you'll come back to our order confirmation.",
                ]
            )
        )
    if x.chance(0.4):
        c.customer(
            x.pick(
                [
                    "And if I return something, where does the money go?",
                    "and refunds go back to paypal?",
                ]
            )
        )
        c.agent(
            f"Refunds always go back to the original payment method, so it's returned to your PayPal account "
            f"within {REFUND_TIME} after the return arrives at our warehouse."
        )
    c.thanks()


def gift_card(c, x):
    c.customer(
        x.pick(
            [
                "How do I use a gift card?",
                "where do i put my gift card code",
                "Can I pay part with a gift card and the rest with my card?",
                "How long is a Northwind Goods gift card valid?",
                "My gift card code isn't accepted at checkout.",
            ]
        )
    )
    q = c.last
    if "part" in q:
        c.agent(
            "Yes, you can combine them. Enter the gift card code first, and if the balance doesn't cover the "
            "whole order, you pay the rest by card or PayPal."
        )
    elif "valid" in q:
        c.agent(f"Our gift cards are valid for {GIFT_CARD_VALID} from the date of purchase.")
    elif "isn't accepted" in q:
        c.agent(
            x.pick(
                [
                    "Please check the 16-digit code carefully (no spaces needed), and that the card isn't fully used "
                    f"and not older than {GIFT_CARD_VALID}. Also note gift cards can't be used to buy other gift cards.",
                    f"Sorry about that! Gift cards are valid for {GIFT_CARD_VALID}, and they can't be used to buy other gift "
                    "cards. Please re-enter the 16-digit code without spaces; if it still fails, send the code to "
                    f"{SUPPORT_EMAIL} and we'll check the balance.",
                ]
            )
        )
    else:
        c.agent(
            x.pick(
                [
                    "At checkout, enter the 16-digit code in the 'Gift card or voucher' field and click Apply. The balance "
                    "is deducted from your order total.",
                    "Just type the 16-digit code into the 'Gift card or voucher' field at checkout. If the balance is lower "
                    "than the order total, you can pay the rest by card or PayPal.",
                ]
            )
        )
    if x.chance(0.35):
        if "valid" in q or "isn't accepted" in q:
            c.customer("can i check the balance somewhere?")
        else:
            c.customer(x.pick(["and how long is it valid?", "can i check the balance somewhere?"]))
        if "valid" in c.last:
            c.agent(f"Gift cards are valid for {GIFT_CARD_VALID} from the date of purchase.")
        else:
            c.agent(
                f"Yes, you can check the balance on {HELP_SITE}, or at checkout after entering the code."
            )
    c.thanks()


def invoice(c, x):
    c.customer(
        x.pick(
            [
                f"Where can I get an invoice for order {x.order}?",
                "I need an invoice for my purchase.",
                "how do i download my invoice",
                f"Could you send me the invoice for {x.order} to {x.email}?",
            ]
        )
    )
    if "send me" in c.last:
        c.agent(
            f"For privacy reasons we only send documents to the e-mail address on your account, but you can "
            f"download the invoice yourself as a PDF under {PATH_INVOICE}. Invoices are available as soon as "
            f"the order has been dispatched."
        )
    else:
        c.agent(
            x.pick(
                [
                    f"You can download it yourself as a PDF under {PATH_INVOICE}. Invoices are available as soon as the "
                    f"order has been dispatched.",
                    f"Invoices are in your account: {PATH_INVOICE}. It's a PDF you can save or print, available once the "
                    f"order has been dispatched.",
                ]
            )
        )
    if x.chance(0.45):
        c.customer(
            x.pick(
                [
                    "and if the order hasn't shipped yet?",
                    "It's not there.",
                    "what about a company invoice with VAT number?",
                ]
            )
        )
        q = c.last
        if "VAT" in q:
            c.agent(
                f"You can add your company name and VAT number under {PATH_EMAIL} before you order; they'll "
                f"then appear on the invoice. For an order you've already placed, e-mail {SUPPORT_EMAIL} and "
                f"we'll issue a corrected invoice."
            )
        else:
            c.agent(
                "The invoice appears under Orders once the order has been dispatched. If it's still processing, "
                "please check back after you get the dispatch e-mail."
            )
    c.thanks()


OUT_OF_SCOPE = {
    "stock_tips": [
        "Which stocks should I buy this year?",
        "any good crypto or stock tips?",
        "Should I invest in tech shares right now?",
    ],
    "recipe": [
        "Do you have a good lasagne recipe?",
        "what can i cook with the cast iron pan, give me a recipe",
        "How do I make sourdough bread?",
    ],
    "weather": [
        "What's the weather going to be like tomorrow?",
        "is it going to rain this weekend",
    ],
    "homework_help": [
        "Can you help me with my maths homework?",
        "write my essay about the french revolution pls",
    ],
    "medical_advice": [
        "I have a headache, what medicine should I take?",
        "Is it safe to take ibuprofen with coffee?",
    ],
    "travel_booking": [
        "Can you book me a flight to Lisbon?",
        "find me a cheap hotel in Rome",
    ],
}


def out_of_scope(c, x, kind):
    c.customer(x.pick(OUT_OF_SCOPE[kind]))
    c.agent(
        x.pick(
            [
                f"I'm sorry, I can't help with that. I'm the {SHOP} support assistant, so I can only answer questions "
                f"about orders, deliveries, returns, refunds, your account and payments.",
                f"That's outside what I can help with, I'm afraid. I'm here for questions about your {SHOP} orders, "
                f"deliveries, returns, account and payments.",
                "Sorry, that's not something I can help with. If you have a question about an order, a delivery, a return "
                "or your account, I'm happy to help!",
            ]
        )
    )
    if x.chance(0.4):
        c.customer(
            x.pick(
                [
                    "ok fair enough. what's your return policy then?",
                    "Fine. How much is delivery?",
                    "oh ok, then can you tell me how to track my order?",
                ]
            )
        )
        q = c.last
        if "return" in q:
            c.agent(a_return_how(x))
        elif "delivery" in q:
            c.agent(a_standard(x))
        else:
            c.agent(a_tracking(x))
    if c.exchanges() == 1:
        c.thanks(
            0.2,
            welcome=[
                "No problem! If you ever have a question about an order, I'm here to help.",
                "You're welcome. Feel free to come back with any questions about your orders.",
            ],
        )
    else:
        c.thanks(0.2)


def request_human(c, x):
    if x.chance(0.5):
        c.customer(
            x.pick(
                [
                    "Can I talk to a real person please?",
                    "i want to speak to a human",
                    "Are you a bot? I'd rather speak to an agent.",
                    f"Please put me through to a person. My number is {x.phone}.",
                    "agent please",
                ]
            )
        )
    else:
        issue = x.pick(
            [
                (
                    f"My order {x.order} arrived with the wrong item.",
                    "I'm sorry about that! You can return the wrong item for free under "
                    f"{PATH_RETURN}, and we'll send the right one as soon as the carrier scans it.",
                ),
                (
                    f"I have a question about a bulk order for my office, 40 x {x.product}.",
                    f"I can help with regular orders. For larger quantities our team can check stock for you; "
                    f"you can also e-mail {SUPPORT_EMAIL}.",
                ),
                (
                    f"My {x.product} is missing a part.",
                    "Sorry about that! Could you tell me which part is missing and your order number? "
                    "We can send the part or replace the item.",
                ),
            ]
        )
        c.customer(issue[0])
        c.agent(issue[1])
        c.customer(
            x.pick(
                [
                    "I'd rather talk to a human about this.",
                    "can i just speak to someone please",
                    f"I'd like a person to call me back on {x.phone}.",
                    "This is complicated, can I talk to a real agent?",
                ]
            )
        )
    q = c.last
    if x.phone in q:
        c.agent(
            x.pick(
                [
                    f"Of course. I've passed your request to our support team; they're available {SUPPORT_HOURS}, and "
                    f"someone will contact you. You can also write to {SUPPORT_EMAIL} at any time.",
                    f"Sure. I'm handing this over to a colleague along with your number. Our team works {SUPPORT_HOURS}.",
                ]
            ),
            closing=False,
        )
    else:
        c.agent(a_handoff(x), closing=False)
    c.closing = False
    if c.exchanges() < 4 and x.chance(0.3):
        c.customer(x.pick(["thanks", "ok, I'll wait", "How long will it take?"]))
        if "wait" in c.last:
            c.agent(
                "Thanks for your patience. A colleague will be with you shortly.", closing=False
            )
        elif "How long" in c.last:
            c.agent(
                f"During our opening hours ({SUPPORT_HOURS}) a colleague usually joins within a few minutes. "
                f"Outside those hours we reply by e-mail within {EMAIL_REPLY_TIME}.",
                closing=False,
            )
        else:
            c.agent("You're welcome. A colleague will be with you shortly.", closing=False)


def complaint_escalation(c, x):
    c.customer(
        x.pick(
            [
                f"This is the third time I'm contacting you about order {x.order}. Nothing happens!",
                f"I'm really unhappy. My {x.product} arrived broken twice now.",
                f"Your service is terrible, my refund for {x.order} still isn't here after three weeks.",
                f"I want to make a complaint about the delivery of {x.order}.",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                "I'm really sorry about this experience, and I understand your frustration. Let me look into it: could you "
                "tell me what has happened so far?",
                "I'm sorry, that's not the experience we want you to have. I'd like to help sort this out. What's the "
                "current state of things?",
            ]
        )
    )
    c.customer(
        x.pick(
            [
                "I want to speak to a manager.",
                "no, I want a human, not a bot",
                f"Just get me someone from your team. Call me on {x.phone} or e-mail {x.email}.",
                "I've explained it enough times, please escalate this.",
            ]
        )
    )
    c.agent(
        x.pick(
            [
                "I understand. I'm escalating this to a senior member of our support team now, with the full history of "
                "your case, so you won't have to explain it again.",
                f"Of course. I've escalated your case to our support team leads. They work {SUPPORT_HOURS} and will get "
                f"back to you directly; outside those hours, expect an e-mail within {EMAIL_REPLY_TIME}.",
            ]
        ),
        closing=False,
    )
    c.closing = False


# (topic, intent, builder, count)
PLAN = [
    ("orders", "order_status", order_status, 18),
    ("orders", "change_order", change_order, 12),
    ("orders", "cancel_order", cancel_order, 15),
    ("returns", "return_item", return_item, 20),
    ("returns", "return_faulty_item", return_faulty_item, 10),
    ("returns", "return_window", return_window, 8),
    ("refunds", "refund_status", refund_status, 18),
    ("refunds", "refund_method", refund_method, 10),
    ("delivery", "delivery_time", delivery_time, 12),
    ("delivery", "delivery_cost", delivery_cost, 12),
    ("delivery", "track_parcel", track_parcel, 12),
    ("delivery", "lost_parcel", lost_parcel, 10),
    ("delivery", "wrong_address", wrong_address, 10),
    ("account", "password_reset", password_reset, 14),
    ("account", "change_email", change_email, 12),
    ("account", "delete_account", delete_account, 10),
    ("payments", "card_declined", card_declined, 10),
    ("payments", "double_charge", double_charge, 9),
    ("payments", "paypal", paypal, 8),
    ("payments", "gift_card", gift_card, 10),
    ("payments", "invoice", invoice, 10),
    ("out_of_scope", None, out_of_scope, 22),
    ("handoff", "request_human", request_human, 20),
    ("handoff", "complaint_escalation", complaint_escalation, 8),
]

OOS_KINDS = list(OUT_OF_SCOPE)


def generate(seed=SEED):
    """Return the list of conversation records (deterministic for a seed)."""
    rng = random.Random(seed)
    jobs = []
    for topic, intent, fn, n in PLAN:
        for k in range(n):
            jobs.append((topic, intent, fn, k))
    rng.shuffle(jobs)
    records = []
    for num, (topic, intent, fn, k) in enumerate(jobs, start=1):
        channel = "email" if rng.random() < 0.2 and topic != "handoff" else "chat"
        ctx = Ctx(rng, channel)
        conv = Conv(ctx)
        if topic == "out_of_scope":
            intent = OOS_KINDS[k % len(OOS_KINDS)]
            fn(conv, ctx, intent)
        else:
            fn(conv, ctx)
        turns = conv.render()
        check(turns)
        records.append(
            {
                "id": f"northwind-{num:04d}",
                "source": SOURCE,
                "turns": turns,
                "meta": {"topic": topic, "intent": intent, "channel": channel},
            }
        )
    return records


def check(turns):
    assert turns and turns[0]["role"] == "customer"
    assert any(t["role"] == "agent" for t in turns)
    for a, b in zip(turns, turns[1:]):
        assert a["role"] != b["role"], turns
    assert len(turns) <= 8


def main(argv):
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    records = generate()
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} conversations to {out}")


if __name__ == "__main__":
    main(sys.argv)
