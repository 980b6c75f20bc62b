"""How the house is assembled: tables built in one place, arrows pointing down.

DESIGN.md, "Registration is explicit": the tables (routes, answers, feeds, channels) are
built where the program is assembled, never filled by the side effect of importing a
module. These tests run a fresh interpreter, so that no module imported by another test
can hide a table that only an import fills.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: routes the school's bot commands with nothing imported but the router itself
_SCHOOL_COMMANDS = r"""
import asyncio, sys
from zoneinfo import ZoneInfo

from handlers import router
from handlers.context import ServiceContext
from handlers.message import InboundMessage
from store.clock import FrozenClock
from store.db import Store
from datetime import datetime, timezone

assert not any(name.startswith(("gateway", "bots", "mail")) for name in sys.modules), \
    sorted(n for n in sys.modules if n.startswith(("gateway", "bots", "mail")))


async def main() -> None:
    store = Store(sys.argv[1])
    await store.open(migrate=False)
    try:
        from store.models import Person, Student
        parent = await Person.create(name="Anna", roles=["parent"])
        child = await Student.create(id="S1", name="Ola", class_name="1a")
        await child.guardians.add(parent)
        ctx = ServiceContext(clock=FrozenClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc)),
                             renderer=None, zone=ZoneInfo("Europe/Warsaw"),
                             mail_domain="example.pl", base_url="http://x")
        for command in ("uwagi", "zadania", "obecnosci"):
            [reply] = await router.route(ctx, InboundMessage("telegram", "1", command=command),
                                         parent)
            print(command, reply.template)
        for kind in ("remarks", "homework", "attendance"):
            [reply] = await router.route(
                ctx, InboundMessage("telegram", "1", callback=f"{kind}:S1"), parent)
            print(kind, reply.template)
    finally:
        await store.close()

asyncio.run(main())
"""


def _fresh(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_school_commands_answer_with_only_the_router_imported(database_url: str) -> None:
    """`/uwagi`, `/zadania`, `/obecnosci` and their buttons answer in a process that
    imported the router and nothing of gateway/ (once, their answers were registered by
    decorators in modules only gateway/hooks imported, and the commands failed)."""
    done = _fresh(_SCHOOL_COMMANDS, database_url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:6] == [
        "uwagi remarks_recent", "zadania homework_upcoming", "obecnosci attendance_recent",
        "remarks remarks_recent", "homework homework_upcoming",
        "attendance attendance_recent"]
