"""SMS costs money: the month's budget, kept before each message leaves (issue #19).

`EMIL_SMS_MONTHLY_BUDGET` (PLN) over `EMIL_SMS_PART_PRICE` (PLN a part) is the month's
cap in parts; the month is the town's (`EMIL_TIMEZONE`), so December's budget starts at
midnight in Milanówek, not in UTC. Parts, not złoty, are counted: the provider charges
parts, and a part's price may change without the count going wrong.

:class:`BudgetedSender` wraps the provider's sender (sms/smsapi.py) rather than
changing it, so that another provider is budgeted the same way. Before a message goes its
parts (sms/encoding.count of the text as sent) are reserved for the month in the store
(store/spend.reserve: one conditional UPDATE, so any number of instances together keep to
the cap). A message the cap has no room for fails with `PermanentSendError("budget")`:
the outbox moves it to the person's next channel (store/outbox.mark_failed), and the
admins are told once a month (`ChannelSpend.exhausted_at`, claimed by one UPDATE) by
their own channels, `sms_budget_spent` in Polish and English.

A send that fails gives its parts back, whatever the failure: a refusal (an SMSAPI error
code, a 429) is not charged; a 5xx or a broken connection may or may not have been — we
chose to give those back too, because the row is retried and reserves again, and
keeping them would count one message up to `EMIL_OUTBOX_MAX_ATTEMPTS` times. The rare
message the provider sent behind a 5xx is then not counted (the provider's own balance,
SMSAPI error 103, is the hard stop behind this one).

Without a budget the parts are still counted (no cap): the composer shows the month's
spend and /metrics the latest month's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from handlers import fanout, i18n
from handlers.channels import Envelope, Sender
from sms.encoding import count
from store import spend
from store.models import Outbox, Person
from store.outbox import PermanentSendError

if TYPE_CHECKING:
    from handlers.context import ServiceContext

log = logging.getLogger(__name__)

CHANNEL = "sms"
NBSP = "\u00a0"


def month_of(now: datetime, zone: ZoneInfo) -> str:
    """"YYYY-MM" of `now` in the town's time zone."""
    return now.astimezone(zone).strftime("%Y-%m")


def parts_of(row: Outbox) -> int:
    """What the row's text costs, in parts, as the provider counts them."""
    return count(row.payload["text"]).parts


@dataclass
class BudgetedSender:
    """A sender that keeps to the month's cap in parts (None: counts without a cap).

    `services` is read at each send (the service context is built after the channels):
    its clock and zone say which month it is, and it fans the admins' notice out; before
    it exists (a bare sender) the real clock and `zone` are used and nobody is told."""

    inner: Sender
    cap: int | None
    zone: ZoneInfo
    services: Callable[[], ServiceContext | None] = lambda: None

    channel: str = field(init=False)

    def __post_init__(self) -> None:
        self.channel = self.inner.channel

    async def send(self, row: Outbox) -> None:
        ctx = self.services()
        now = ctx.clock.now() if ctx is not None else datetime.now(timezone.utc)
        month = month_of(now, ctx.zone if ctx is not None else self.zone)
        parts = parts_of(row)
        if not await spend.reserve(self.channel, month, parts, self.cap):
            if await spend.claim_exhausted(self.channel, month, now) and ctx is not None:
                await tell_admins(ctx, month, self.cap or 0, now)
            raise PermanentSendError("budget")
        try:
            await self.inner.send(row)
        except BaseException:
            # not sent, or not knowably (see the module's docstring): the parts go back
            await spend.give_back(self.channel, month, parts)
            raise


async def tell_admins(ctx: ServiceContext, month: str, cap: int, now: datetime) -> None:
    """The month's SMS budget is spent: every admin hears it once, by their channels."""
    admins = [p for p in await Person.all() if "admin" in (p.roles or [])]
    async with in_transaction():
        await fanout.fan_out(ctx, admins, fanout.Notice(
            kind="alerts", template="sms_budget_spent", key=f"sms-budget:{month}",
            context={"month": month, "parts": cap}, cause="sms-budget"), now)
    log.warning("SMS budget of %s spent (%d parts): the rest goes by the next channel",
                month, cap)


def zloty(amount: Decimal) -> str:
    """PLN the Polish way: "12,48 zł" (a comma, and a space between thousands)."""
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    whole, _, grosze = f"{rounded:,.2f}".partition(".")
    return whole.replace(",", NBSP) + "," + grosze + NBSP + "zł"


async def month_state(ctx: ServiceContext, cap: int | None) -> dict[str, Any]:
    """The month so far: parts spent, the cap and what is left of it (None: no cap)."""
    month = month_of(ctx.clock.now(), ctx.zone)
    used = await spend.spent(CHANNEL, month)
    return {"month": month, "spent": used, "cap": cap,
            "left": None if cap is None else max(0, cap - used)}


async def estimate(ctx: ServiceContext, people: list[Person], sample: Any, *, urgent: bool,
                   price: Decimal | None, cap: int | None, lang: str = "pl",
                   next_id: int = 1) -> dict[str, Any]:
    """What an announcement to `people` will cost in SMS, before it is sent (the
    console's composer): who gets it by SMS first (the fan-out's own rule, `paid_last`,
    and their opt-outs), each one's text rendered and packed as the fan-out will — the
    link of a real link's length, "bez polskich znaków" for those who chose it — and
    counted in parts; the total, its price, and the month's budget left. `sample` is the
    unsaved announcement, `next_id` the id it will likely get (its link's length);
    `lang` the composer's, whose text is shown."""
    from handlers.announcements import ACK_CONTEXT, ack_token, with_ack_link

    shape = ctx.channels[CHANNEL]
    token = ack_token(ctx, next_id, max((p.id for p in people), default=1))
    parts: dict[tuple[str, bool], tuple[str, int]] = {}  # (lang, plain) → (text, parts)

    def packed(language: str, plain: bool) -> tuple[str, int]:
        if (language, plain) not in parts:
            rendered = with_ack_link(ctx, shape.rendered(
                ctx.renderer, "announcement", language, ACK_CONTEXT | {"announcement": sample}),
                token)
            text = shape.payload(ctx, rendered, Envelope(plain_letters=plain))["text"]
            parts[(language, plain)] = (text, count(text).parts)
        return parts[(language, plain)]

    first = fallback = total = 0
    for recipient in await fanout.recipients_of(ctx, people, urgent=urgent):
        assert recipient.person is not None
        targets = [t for t in recipient.targets
                   if not fanout.off_on(recipient.person, "announcements", t[0])]
        if targets and targets[0][0] == CHANNEL:
            first += 1
            total += packed(i18n.language(recipient.language),
                            recipient.person.plain_letters)[1]
        elif any(channel == CHANNEL for channel, _ in targets):
            fallback += 1
    text, own = packed(lang, False)
    plain_text, plain = packed(lang, True)
    cost = None if price is None else price * total
    month = await month_state(ctx, cap)
    return {"people": first, "fallback": fallback, "text": text, "parts": own,
            "encoding": count(text).encoding, "plain_text": plain_text, "plain_parts": plain,
            "total": total, "cost": None if cost is None else zloty(cost),
            "left_cost": None if month["left"] is None or price is None
            else zloty(price * month["left"]), **month}
