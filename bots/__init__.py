"""Telegram channel adapter.

PTB 22 reports `retry_after` as an int with a deprecation warning unless PTB_TIMEDELTA is
set; we opt in to the future `timedelta` behaviour (shared/NOTES.md).
"""

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")
