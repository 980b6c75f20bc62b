"""The sign-in worker: console sign-in forms, stored by the page, answered here.

The page (gateway/panel.py) stores every form with one INSERT and answers at once; this
worker then looks the address up, writes the link and queues its mail
(handlers/staff.py, `answer_link_requests`). Whether an address is a staff member's
therefore changes nothing in the answer or its timing (issue #18, fault 6). It is an
owned part like the inbox: supervised, woken by the page (or, with
`EMIL_WORKER_PROCESS`, by a `NOTIFY` from the intake) and polling as well, so a form
stored just before a crash is answered after the restart.

It starts after a random pause of up to `jitter` seconds. Work done right after the
answer would still show as load: a request sent just after a staff address's would be
slower while this worker writes the link and the mail (bench/sign_in_timing.py measured
the request after a staff one 1.3 times slower with a fixed 20 ms pause). At a random
moment within a second, that work lands on the next request no more often after a staff
address than after any other.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from gateway.tasks import Woken
from handlers import staff
from handlers.context import ServiceContext


class SignInWorker(Woken):
    def __init__(self, ctx: ServiceContext, outbox_wake: Callable[[], None],
                 jitter: float = 1.0) -> None:
        super().__init__()
        self.ctx = ctx
        self.outbox_wake = outbox_wake
        self.jitter = jitter

    async def run(self, poll_seconds: float = 2.0) -> None:
        while True:
            self.wake.clear()
            handled = await self.drain()
            self.beat()
            if not handled:
                await self.idle(poll_seconds)
                # the page's answer is out before its request is looked at, and the
                # moment of this work says nothing of which request it was for
                await asyncio.sleep(random.uniform(0.0, self.jitter))

    async def drain(self) -> int:
        """Answer one batch of stored forms; returns how many there were."""
        handled = await staff.answer_link_requests(self.ctx, self.ctx.clock.now())
        if handled:
            self.outbox_wake()
        return handled
