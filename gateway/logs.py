"""The log format of every process of the gateway: `emilanowek` itself and the worker
process it spawns (`gateway/worker_process.py`), which calls this on its own."""

from __future__ import annotations

import logging


def setup_logging(level: int) -> None:
    """One format for every process of the gateway; the chattiest libraries at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(processName)s "
                                            "%(name)s: %(message)s")
    for noisy in ("httpx", "aiosqlite", "tortoise", "apscheduler", "mail.log", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
