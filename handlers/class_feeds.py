"""A register feed addressed to whole classes (homework, lesson topics): stored by the
register's own id, and what is new or changed told to each class's guardians.

One path for every such feed (homework and topics were near-copies of it): the rows of
all batches are read and written together, the guardians of every class with news found
at once, and each batch answered with what it did."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tortoise.models import Model

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out
from store.upsert import Upserts


class ClassItem(Protocol):
    """An entry of a class feed: the register's id and the class it is for."""

    @property
    def id(self) -> str: ...

    @property
    def class_name(self) -> str: ...


Item = TypeVar("Item", bound=ClassItem)


async def apply_batches(ctx: ServiceContext, model: type[Model], batches: list[list[Item]],
                        columns: Callable[[Item], dict[str, Any]],
                        notice: Callable[[str, list[Item]], Notice]) -> list[dict[str, Any]]:
    """Store each batch's items in `model` (`columns`: an item's stored values) and tell
    each class's guardians of its new or changed items (`notice`: the class's notice);
    one answer per batch: accepted, created/updated/unchanged, notifications, and the
    classes nobody is registered in."""
    now = ctx.clock.now()
    rows = await Upserts.read(model, [item.id for batch in batches for item in batch], now)
    answers: list[dict[str, Any]] = []
    all_news: list[dict[str, list[Item]]] = []
    for batch in batches:
        news: dict[str, list[Item]] = defaultdict(list)
        for item in batch:
            if rows.put(item.id, columns(item)).kind != "unchanged":
                news[item.class_name].append(item)
        all_news.append(news)
        answers.append({"accepted": len(batch), **rows.tally("updated")})
    await rows.write()
    classes = await school.guardians_of_classes({c for news in all_news for c in news})
    for answer, news in zip(answers, all_news, strict=True):
        answer["notifications"], unknown = 0, []
        for class_name, items in news.items():
            if class_name not in classes:
                unknown.append(class_name)
                continue
            outcome = await fan_out(ctx, classes[class_name], notice(class_name, items), now)
            answer["notifications"] += outcome.queued + outcome.digested
        answer["unknown_classes"] = sorted(unknown)
    return answers
