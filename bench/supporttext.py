"""Generated support conversations for the benchmark: plausible mail and chat, not word salad.

Each ticket has a topic (login trouble, a late parcel, a double charge, ...). Its messages are
built from that topic's sentences with their slots filled (products, names, order numbers, error
codes, cities), plus the greetings, apologies and sign-offs real support mail is full of. So the
vocabulary is large and skewed like real text: a few words are in most messages, most words are
rare, and a search for two words a customer might type matches anything from a handful of
messages to many thousands.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PRODUCTS = [
    "Nimbus Router X2",
    "Nimbus Mesh Pro",
    "HomeCam 360",
    "HomeCam Mini",
    "ThermoSmart T5",
    "AquaSense leak sensor",
    "PowerBank 20000",
    "SoundBar Arc",
    "EchoBuds Pro",
    "FitBand 4",
    "FitBand Kids",
    "KeyLock Smart",
    "DoorBell HD",
    "LightStrip RGB",
    "SmartPlug Duo",
    "Vacuum Robo S8",
    "AirPurifier 300",
    "Kettle Connect",
    "CoffeeMaster Barista",
    "Printer Jet 5200",
    "Scanner Flow",
    "Laptop Sleeve 15",
    "Monitor Vista 27",
    "Keyboard Glide",
    "Mouse Swift",
    "Webcam Clear 4K",
    "Dock Station USB-C",
    "Tablet Note 11",
    "Phone Case Armor",
    "Charger GaN 65W",
    "Cloud Backup Plus",
    "Family Plan",
    "Business Plan",
    "Premium Membership",
    "Photo Storage 1TB",
]
FIRST_NAMES = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Luca",
    "Maria",
    "Nils",
    "Olga",
    "Pablo",
    "Quentin",
    "Rosa",
    "Stefan",
    "Tanja",
    "Ulrich",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Amélie",
    "Björn",
    "Céline",
    "Dörte",
    "Émile",
    "Françoise",
    "Jürgen",
    "Léa",
    "Małgorzata",
    "Noémie",
    "Søren",
    "Zoë",
    "Chloé",
    "José",
    "Mehmet",
    "Aiko",
    "Priya",
    "Kwame",
    "Sven",
    "Ingrid",
    "Tomás",
    "Ana",
    "Lars",
    "Mette",
    "Pieter",
    "Joost",
]
AGENTS = ["Sam", "Alex", "Jordan", "Robin", "Kim", "Charlie", "Morgan", "Taylor", "Jamie", "Riley"]
CITIES = [
    "Berlin",
    "Hamburg",
    "Munich",
    "Vienna",
    "Zurich",
    "Paris",
    "Lyon",
    "Madrid",
    "Lisbon",
    "Rome",
    "Milan",
    "Amsterdam",
    "Rotterdam",
    "Brussels",
    "Copenhagen",
    "Oslo",
    "Stockholm",
    "Helsinki",
    "Warsaw",
    "Prague",
    "Dublin",
    "London",
    "Manchester",
    "Edinburgh",
    "Cologne",
    "Leipzig",
    "Graz",
]
CARRIERS = ["DHL", "UPS", "DPD", "GLS", "Hermes", "FedEx", "PostNL", "Royal Mail"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "the Android app", "the iPhone app", "the iPad app"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PAYMENT = ["Visa", "Mastercard", "PayPal", "bank transfer", "Apple Pay", "Google Pay", "Klarna"]

# Per topic: subjects, what the end user writes, what the agent answers.
TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "login": (
        ["Cannot log in", "Login not working", "Locked out of my account", "Password reset email missing"],
        [
            "I cannot log in to my account since {day}, it says my password is wrong.",
            "The password reset email never arrives, I checked the spam folder too.",
            "My account got locked after three attempts and the unlock link has expired.",
            "Two factor authentication codes are rejected in {browser}.",
            "I changed my email address and now I cannot sign in at all.",
        ],
        [
            "I have sent a new password reset link to your address, it is valid for 24 hours.",
            "Your account was locked for security reasons; I have unlocked it now.",
            "Please make sure the clock on your phone is set automatically, otherwise codes are rejected.",
            "Could you try clearing the cookies of {browser} and signing in again?",
        ],
    ),
    "delivery": (
        ["Where is my order", "Parcel not delivered", "Delivery delayed", "Tracking shows no update"],
        [
            "My order {order} of the {product} has not arrived yet, it was supposed to come on {day}.",
            "The {carrier} tracking number has shown no update for five days.",
            "The parcel was marked as delivered in {city} but nobody rang the bell.",
            "I moved to {city} last week, can you change the delivery address of order {order}?",
        ],
        [
            "I checked with {carrier}: the parcel is in the depot in {city} and goes out tomorrow.",
            "I have opened an investigation with {carrier} for order {order}.",
            "If the parcel has not arrived by {day}, we will send a replacement free of charge.",
            "The delivery address of order {order} has been updated.",
        ],
    ),
    "refund": (
        ["Refund request", "Money not refunded", "Return and refund", "Cancel my order"],
        [
            "I returned the {product} two weeks ago and I still have not received my refund.",
            "Please cancel order {order}, I ordered the wrong colour.",
            "I would like to return the {product}, it does not fit my needs.",
            "The refund of {amount} euros has not shown up on my {payment} statement.",
        ],
        [
            "Your refund of {amount} euros was issued today and should reach your {payment} account "
            "within five business days.",
            "I have cancelled order {order}; you will not be charged.",
            "Please use the prepaid return label attached to this email.",
            "Once the warehouse receives the {product}, the refund is processed within 48 hours.",
        ],
    ),
    "billing": (
        ["Charged twice", "Wrong invoice", "Question about my bill", "Invoice with VAT number"],
        [
            "I was charged twice for my {plan} this month, {amount} euros each time.",
            "The invoice for order {order} shows the wrong company name and no VAT number.",
            "Why did the price of my {plan} go up without notice?",
            "My {payment} payment failed but the money left my account.",
        ],
        [
            "You are right, the second charge of {amount} euros was a mistake and has been refunded.",
            "I have corrected the invoice for order {order}; the new one is attached.",
            "The price change was announced by email on {day}; I have applied a one-time discount.",
            "The failed {payment} payment is usually reversed by your bank within three days.",
        ],
    ),
    "defect": (
        ["Device stopped working", "Broken on arrival", "Warranty claim", "Strange noise"],
        [
            "My {product} stopped working after the latest update, the light blinks red.",
            "The {product} arrived with a cracked screen.",
            "The {product} makes a strange clicking noise when it charges.",
            "The battery of my {product} drains in a few hours, it is only four months old.",
        ],
        [
            "Please hold the reset button for ten seconds and tell me whether the light turns green.",
            "That is covered by the warranty; I have created repair order {order} for your {product}.",
            "Could you send us a photo of the damage and the serial number of the {product}?",
            "We will ship a replacement {product} as soon as we receive the faulty one.",
        ],
    ),
    "setup": (
        ["Setup help", "Cannot connect to wifi", "Pairing fails", "How do I install"],
        [
            "The {product} does not find my wifi network during setup.",
            "Pairing the {product} with the app fails with error {error}.",
            "How do I connect the {product} to my {product2}?",
            "The installation stops at 80 percent with error {error} in {browser}.",
        ],
        [
            "The {product} only supports 2.4 GHz networks; please enable that band on your router.",
            "Error {error} means the firmware is outdated: update the app and try again.",
            "You will find a step by step guide for the {product} in the help centre.",
            "Please restart the {product} and keep the phone close to it while pairing.",
        ],
    ),
    "account": (
        ["Change my plan", "Delete my account", "Update billing address", "Upgrade subscription"],
        [
            "I would like to upgrade from the {plan} to the Business Plan.",
            "Please delete my account and all my data under the GDPR.",
            "How can I change the billing address on my {plan}?",
            "I want to downgrade my {plan}, it is too expensive for us.",
        ],
        [
            "Your plan has been changed; the difference of {amount} euros is prorated.",
            "Your account deletion request is confirmed; all data is removed within 30 days.",
            "You can change the billing address under Settings, then Billing.",
            "I have scheduled the downgrade for the end of your billing period.",
        ],
    ),
    "app": (
        ["App crashes", "Sync not working", "Notifications missing", "Bug in the dashboard"],
        [
            "The app crashes on start since the update to version {version}.",
            "My photos do not sync to Cloud Backup Plus any more, it says error {error}.",
            "I no longer get push notifications from the {product}.",
            "The dashboard shows the wrong time zone for {city}.",
        ],
        [
            "Version {version} had a bug on some phones; the fix is rolling out today.",
            "Please sign out and in again, then start a manual sync from Settings.",
            "Check that notifications are allowed for the app in your phone's settings.",
            "Thank you for the report, I have forwarded it to our developers.",
        ],
    ),
}
OPENINGS_USER = ["Hello,", "Hi,", "Good morning,", "Dear support team,", "Hi there,", "Hello again,", ""]
CLOSINGS_USER = [
    "Thanks in advance.",
    "Best regards, {name}",
    "Thank you, {name}",
    "Please help, this is urgent.",
    "Kind regards",
    "Cheers, {name}",
    "",
]
OPENINGS_AGENT = ["Hi {name},", "Hello {name},", "Dear {name},", "Thank you for contacting us, {name}."]
FILLERS_AGENT = [
    "Sorry for the inconvenience.",
    "I understand how frustrating this is.",
    "Thank you for your patience.",
    "Let me know if there is anything else I can do.",
    "I hope this helps.",
    "Apologies for the delay in getting back to you.",
]
CLOSINGS_AGENT = ["Best regards, {agent}", "Kind regards, {agent} from the support team", "Cheers, {agent}"]
FOLLOWUPS_USER = [
    "That worked, thank you!",
    "It still does not work.",
    "I tried that already.",
    "Any news on this?",
    "I am still waiting for an answer.",
    "Great, thanks for the quick help.",
    "The problem is back since {day}.",
    "Here is the photo you asked for.",
]

_STOP = """the and for you your with this that have has not was are but from our any can will all its
been into then than them they their there what when which would could should please thanks thank
hello dear best regards kind cheers hi good morning again also only some very"""
STOPWORDS = set(_STOP.split())
_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass
class Conversation:
    topic: str
    subject: str
    messages: list[tuple[bool, str]]  # (from the end user, text)


class SupportText:
    def __init__(self, seed: int = 4) -> None:
        self.rng = random.Random(seed)
        self.topics = list(TOPICS)
        self._order = 40_000_000

    def _fill(self, template: str, name: str) -> str:
        rng = self.rng
        if "{" not in template:
            return template
        self._order += rng.randint(1, 9)
        return template.format(
            name=name,
            agent=rng.choice(AGENTS),
            product=rng.choice(PRODUCTS),
            product2=rng.choice(PRODUCTS),
            order=f"#{self._order}",
            day=rng.choice(WEEKDAYS),
            city=rng.choice(CITIES),
            carrier=rng.choice(CARRIERS),
            browser=rng.choice(BROWSERS),
            payment=rng.choice(PAYMENT),
            plan=rng.choice(PRODUCTS[-5:]),
            amount=f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
            error=f"E-{rng.randint(100, 999)}",
            version=f"{rng.randint(3, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        )

    def conversation(self, n_messages: int) -> Conversation:
        rng = self.rng
        topic = rng.choice(self.topics)
        subjects, user, agent = TOPICS[topic]
        name = rng.choice(FIRST_NAMES)
        subject = self._fill(rng.choice(subjects), name)
        messages: list[tuple[bool, str]] = []
        for i in range(n_messages):
            if i % 2 == 0:  # the end user
                parts = [rng.choice(OPENINGS_USER)] if i == 0 else []
                if i == 0:
                    parts += [self._fill(s, name) for s in rng.sample(user, rng.randint(1, 3))]
                else:
                    parts.append(self._fill(rng.choice(FOLLOWUPS_USER), name))
                    if rng.random() < 0.5:
                        parts.append(self._fill(rng.choice(user), name))
                parts.append(self._fill(rng.choice(CLOSINGS_USER), name))
            else:
                parts = [self._fill(rng.choice(OPENINGS_AGENT), name)]
                parts += [self._fill(s, name) for s in rng.sample(agent, rng.randint(1, 2))]
                if rng.random() < 0.6:
                    parts.append(rng.choice(FILLERS_AGENT))
                parts.append(self._fill(rng.choice(CLOSINGS_AGENT), name))
            messages.append((i % 2 == 0, " ".join(p for p in parts if p)))
        return Conversation(topic, subject, messages)

    def query(self, text: str) -> str | None:
        """Two words a customer or agent might search for, taken from a real message."""
        words = [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS]
        words = list(dict.fromkeys(words))
        if len(words) < 2:
            return None
        a, b = sorted(self.rng.sample(range(len(words)), 2))
        return f"{words[a].lower()} {words[b].lower()}"
