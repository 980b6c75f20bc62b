"""How each person wants to be told: the one rule for their preferences, which the API's
`PATCH /api/v1/people/{id}`, the console's person page and the bot's `/ustawienia` (which
first turns its Polish words into these values) all call.

`plain_letters` (a boolean): "bez polskich znaków" — text to the person on a paid channel
(SMS) has its Polish letters transliterated, 160 characters a part instead of 70.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from handlers.fanout import parse_notices
from handlers.i18n import LANGUAGES
from handlers.message import InvalidInput
from store.models import Person

DIGEST_MODES = ("instant", "daily")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def clock_time(value: str) -> str | None:
    """"7:00" or "07:00" → "07:00"; None if it is not a time of day. The one rule for
    the bot's `/ustawienia cisza` and the API's `quiet_start`/`quiet_end` (they used to
    disagree on "7:00")."""
    match = _HHMM.match(value.strip()) if len(value) <= 5 else None
    return f"{int(match.group(1)):02d}:{match.group(2)}" if match else None


def parse_preferences(values: dict[str, Any], person: Person, channels: Sequence[str]
                      ) -> dict[str, Any]:
    """The changes to a person's preferences, checked: the one rule for the API's PATCH
    and the bot's `/ustawienia` (which first turns its Polish words into these values).
    `channels`: those a channel order may name (`ctx.channels.names`)."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "digest_mode":
            if value not in DIGEST_MODES:
                raise InvalidInput(name, "'digest_mode' is 'instant' or 'daily'")
            changes[name] = value
        elif name == "digest_hour":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 23:
                raise InvalidInput(name, "'digest_hour' is 0–23")
            changes[name] = value
        elif name in ("quiet_start", "quiet_end"):
            normalised = clock_time(value) if isinstance(value, str) else None
            if normalised is None:
                raise InvalidInput(name, f"'{name}' is HH:MM")
            changes[name] = normalised
        elif name == "channel_order":
            if (not isinstance(value, list) or not value
                    or any(c not in channels for c in value)):
                raise InvalidInput(name, f"'channel_order' lists some of {', '.join(channels)}")
            changes[name] = list(dict.fromkeys(value))
        elif name == "language":
            if value not in LANGUAGES:
                raise InvalidInput(name, f"'language' is one of {', '.join(LANGUAGES)}")
            changes[name] = value
        elif name == "plain_letters":
            if not isinstance(value, bool):
                raise InvalidInput(name, "'plain_letters' is true or false")
            changes[name] = value
        elif name == "notices":
            changes[name] = {**(person.notices or {}), **parse_notices(value, channels=channels)}
        else:
            raise InvalidInput(name, f"'{name}' is not a preference")
    return changes


async def set_preferences(person: Person, changes: dict[str, Any]) -> None:
    if changes:
        await Person.filter(id=person.id).update(**changes)
        for name, value in changes.items():
            setattr(person, name, value)
