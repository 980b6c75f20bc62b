"""Multi-step dialogues (`/sprawa`, `/ogloszenie`) kept in the store, not in memory, so a
restart or another instance picks the conversation up where it stood."""

from __future__ import annotations

from handlers.context import ServiceContext
from handlers.message import InboundMessage
from store.models import Conversation

#: a dialogue left alone this long is forgotten
TIMEOUT_MINUTES = 30


def key(msg: InboundMessage) -> str:
    return f"{msg.channel}:{msg.address}"


async def begin(ctx: ServiceContext, msg: InboundMessage, kind: str, step: str,
                data: dict | None = None) -> None:
    await Conversation.filter(key=key(msg)).delete()
    await Conversation.create(key=key(msg), kind=kind, step=step, data=data or {},
                              updated_at=ctx.clock.now())


async def current(ctx: ServiceContext, msg: InboundMessage) -> Conversation | None:
    conv = await Conversation.get_or_none(key=key(msg))
    if conv is None:
        return None
    if (ctx.clock.now() - conv.updated_at).total_seconds() > TIMEOUT_MINUTES * 60:
        await conv.delete()
        return None
    return conv


async def advance(ctx: ServiceContext, conv: Conversation, step: str | None, data: dict) -> None:
    if step is None:
        await conv.delete()
        return
    await Conversation.filter(key=conv.key).update(step=step, data=data,
                                                   updated_at=ctx.clock.now())


async def cancel(msg: InboundMessage) -> bool:
    return bool(await Conversation.filter(key=key(msg)).delete())
