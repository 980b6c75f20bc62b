"""Typed keys for what lives on the aiohttp application (aiohttp's `web.AppKey`)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from telegram import Bot

from gateway.config import Settings
from gateway.dispatcher import Dispatcher
from gateway.inbox import Inbox
from gateway.metrics import GatewayMetrics
from gateway.sign_in import SignInWorker
from gateway.tasks import Health
from handlers.context import ServiceContext
from store.batcher import GroupCommit
from store.clock import Clock
from store.db import Store

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Store)
SERVICES = web.AppKey("services", ServiceContext)
METRICS = web.AppKey("metrics", GatewayMetrics)
BOT = web.AppKey("bot", Bot)
INBOX = web.AppKey("inbox", Inbox)
SIGN_IN = web.AppKey("sign_in", SignInWorker)  # answers console sign-in forms
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CASE_COMMIT = web.AppKey("case_commit", GroupCommit)
UPDATE_COMMIT = web.AppKey("update_commit", GroupCommit)
HOOK_COMMIT = web.AppKey("hook_commit", GroupCommit)
SMTP_PORT = web.AppKey("smtp_port", int)
STATE = web.AppKey("state", dict)  # what /healthz reports: {"smtp": bool, ...}
PUBLISHER = web.AppKey("publisher", asyncio.Event)  # wakes the announcement fan-out
OPTIONS = web.AppKey("options", dict)  # {"start_listeners": bool, "run_workers": bool}
HEALTH = web.AppKey("health", Health)  # background parts, up or restarting
