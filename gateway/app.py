"""Assembling the gateway: one aiohttp application, one cleanup_ctx per part.

Order is start-up order (and the reverse is shutdown order): store → services → bot →
inbox → dispatcher → SMTP → scheduler. `web.run_app` owns the loop and handles
SIGINT/SIGTERM, so stopping is the same path as a test's teardown.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta

from aiohttp import web
from telegram import Bot

from bots import channel as telegram_channel
from bots.inbound import store_updates
from bots.poller import poll_forever
from bots.sender import build_bot
from gateway import api, console, hooks, openapi, pages, tasks
from gateway.client import client_address
from gateway.config import Settings
from gateway.dispatcher import Dispatcher, Lane
from gateway.errors import errors_middleware
from gateway.inbox import Inbox
from gateway.keys import (
    BOT,
    CASE_COMMIT,
    CLOCK,
    DISPATCHER,
    HEALTH,
    HOOK_COMMIT,
    INBOX,
    METRICS,
    OPTIONS,
    PUBLISHER,
    SERVICES,
    SETTINGS,
    SIGN_IN,
    SMTP_PORT,
    STATE,
    STORE,
    UPDATE_COMMIT,
)
from gateway.metrics import GatewayMetrics
from gateway.scheduler import scheduler_ctx
from gateway.sign_in import SignInWorker
from gateway.sru import SruCatalogue
from gateway.validate import body_deadline
from gateway.worker_process import worker_process_ctx
from handlers import router, signature_check
from handlers.channels import Channel, Channels, HookEnv, Sender
from handlers.context import AttachmentLimits, LibraryRules, ServiceContext
from handlers.netaddr import trusted_networks
from handlers.ratelimit import Limits
from handlers.render import Renderer
from handlers.retention import Retention
from mail import channel as mail_channel
from mail.authenticate import MailAuth
from mail.server import GatewaySMTPHandler, smtp_factory
from sms import channel as sms_channel
from sms.budget import BudgetedSender
from store import leadership, wakeup
from store.batcher import GroupCommit
from store.clock import Clock
from store.db import Store
from store.secrets import stored_secret

log = logging.getLogger(__name__)



def instance_name(settings: Settings) -> str:
    return settings.instance_name or f"{socket.gethostname()}-{secrets.token_hex(3)}"


def build_channels(settings: Settings, bot: Callable[[], Bot | None] = lambda: None,
                   more: Iterable[Channel] = (),
                   bounce_key: Callable[[], bytes | None] = lambda: None,
                   services: Callable[[], ServiceContext | None] = lambda: None) -> Channels:
    """Every channel, registered here and only here; the order is the default order a
    person is reached in (Telegram, email, then SMS — the paid last resort — when its
    token is set). `more`: channels of the caller's own (a test's fake fourth channel);
    `services`: the service context once built (the SMS budget tells the admins by it)."""
    def budget(sender: Sender) -> Sender:
        return BudgetedSender(sender, settings.sms_budget_parts, settings.zone, services)

    return Channels([
        telegram_channel.channel(bot, rate=settings.telegram_rate,
                                 chat_interval=settings.telegram_chat_interval),
        mail_channel.channel(settings.mail_domain, settings.smtp_relay, settings.sent_mail_dir,
                             dkim=settings.mail_signer(), bounce_key=bounce_key),
        *([sms_channel.channel(settings.sms_token, api_url=settings.sms_api_url,
                               sender_name=settings.sms_sender, rate=settings.sms_rate,
                               max_parts=settings.sms_max_parts, budget=budget,
                               number_interval=settings.sms_number_interval or None,
                               callback_secret=settings.sms_callback_secret,
                               callback_networks=settings.sms_callback_networks,
                               part_price=settings.sms_part_price,
                               budget_parts=settings.sms_budget_parts)]
           if settings.sms_token else []),
        *more,
    ])


def mount_callbacks(app: web.Application, channels: Channels) -> None:
    """Every registered channel's own HTTP callbacks (handlers/channels.py), under
    `/hooks/<channel>`: a provider's delivery reports and incoming messages. The channel
    gets what it needs through a HookEnv, read when a request comes (the services and
    workers are built at start-up, after the routes)."""
    env = HookEnv(services=lambda: app[SERVICES], wake_inbox=lambda: app[INBOX].notify(),
                  wake_outbox=lambda: app[DISPATCHER].notify(), client_address=client_address,
                  max_bytes=app[SETTINGS].hook_max_bytes)
    for channel in channels:
        for route in channel.callbacks(env) if channel.callbacks is not None else ():
            web.RouteDef(route.method, f"/hooks/{channel.name}{route.path}", route.handler,
                         route.kwargs).register(app.router)


def build_services(settings: Settings, clock: Clock,
                   channels: Channels | None = None) -> ServiceContext:
    return ServiceContext(
        clock=clock,
        renderer=Renderer(settings.zone, settings.base_url, facts={
            "link_code_hours": max(1, round(settings.link_code_ttl_minutes / 60)),
            "renew_window_days": settings.renew_window_days}),
        zone=settings.zone,
        mail_domain=settings.mail_domain,
        base_url=settings.base_url,
        link_code_ttl=timedelta(minutes=settings.link_code_ttl_minutes),
        attachment_max_size=settings.attachment_max_size,
        attachments=AttachmentLimits(case_files=settings.case_attachments_max_files,
                                     case_bytes=settings.case_attachments_max_bytes,
                                     store_bytes=settings.attachments_max_total),
        quiet_start=settings.quiet_start,
        quiet_end=settings.quiet_end,
        digest_hour=settings.digest_hour,
        library=LibraryRules(settings.loan_period_days, settings.library_grace_days,
                             settings.renew_window_days),
        signing_secret=settings.signing_secret or "",
        mail_auth=MailAuth(authserv_id=settings.mail_domain,
                           trusted_authserv=settings.smtp_trusted_authserv,
                           verify=settings.mail_auth == "dkim"),
        ack_ttl=timedelta(days=settings.ack_ttl_days),
        cases_unit=settings.cases_unit,
        catalogue=(SruCatalogue(settings.catalogue_sru_url, settings.catalogue_timeout)
                   if settings.catalogue_sru_url else None),
        catalogue_timeout=settings.catalogue_timeout,
        retention_days=settings.retention_days,
        retention=Retention(
            messages_days=settings.retention_days,
            closed_case_days=settings.retain_closed_case_days,
            attachment_days=settings.retain_attachment_days, loan_days=settings.retain_loan_days,
            conversation_days=settings.retain_conversation_days,
            spool_days=settings.retain_spool_days, session_days=settings.retain_session_days,
            job_run_days=settings.retain_job_run_days, hook_days=settings.retain_hook_days,
            link_code_days=settings.retain_link_code_days,
            school_year_start=settings.school_year_start, spool_dir=settings.sent_mail_dir),
        attendance_gather=timedelta(minutes=settings.attendance_gather_minutes),
        limits=Limits(time.monotonic, cases_per_client=settings.rate_cases_per_client,
                      cases_per_recipient=settings.rate_cases_per_recipient,
                      mail_cases_per_sender=settings.rate_mail_cases_per_sender,
                      mail_per_peer=settings.rate_mail_per_peer,
                      bot_per_chat=settings.rate_bot_per_chat,
                      code_failures_per_client=settings.rate_code_failures_per_client,
                      code_failures_per_case=settings.rate_code_failures_per_case,
                      page_posts_per_client=settings.rate_page_posts_per_client,
                      paid_answers_per_address=settings.rate_paid_answers_per_address),
        channels=channels or build_channels(settings),
    )


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = Store(app[SETTINGS].database_url, app[SETTINGS].sqlite_synchronous)
    await store.open(migrate=True)
    app[STORE] = store
    yield
    await store.close()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, now = app[SETTINGS], app[CLOCK].now()
    services = build_services(settings, app[CLOCK], app[OPTIONS]["channels"])
    # kept in the store, so every process and instance signs and checks alike
    if not settings.signing_secret:
        services.signing_secret = await stored_secret("signing", now)
    services.code_key = (await stored_secret("access-code", now)).encode()
    app[SERVICES] = services
    yield


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Telegram channel: off without a token; polling or webhook transport."""
    settings = app[SETTINGS]
    if not settings.telegram_token:
        yield
        return
    bot = build_bot(settings.telegram_token, settings.telegram_api_url)
    await bot.initialize()
    app[BOT] = bot
    app[SERVICES].bot_username = bot.username
    if (settings.telegram_mode == "webhook" and settings.base_url.startswith("https://")
            and app[OPTIONS]["start_listeners"]):
        await bot.set_webhook(f"{settings.base_url}/telegram/webhook",
                              secret_token=settings.telegram_webhook_secret,
                              allowed_updates=["message", "callback_query"])
    yield
    await bot.shutdown()


async def commit_ctx(app: web.Application) -> AsyncIterator[None]:
    """Group commits for the hot endpoints: case submissions, webhook updates, hooks."""
    clock = app[CLOCK]
    case_commit: GroupCommit = GroupCommit(
        lambda drafts: api.apply_new_cases(app, drafts),
        after_commit=lambda: app[DISPATCHER].notify())

    async def apply_updates(updates: list[dict]) -> list[None]:
        await store_updates(updates, clock.now())
        return [None] * len(updates)

    update_commit: GroupCommit = GroupCommit(apply_updates, after_commit=lambda: app[INBOX].notify())
    hook_commit: GroupCommit = GroupCommit(
        lambda works: hooks.apply_hooks(app[SERVICES], works),
        after_commit=lambda: app[DISPATCHER].notify())
    app[CASE_COMMIT], app[UPDATE_COMMIT], app[HOOK_COMMIT] = case_commit, update_commit, hook_commit
    health = app[HEALTH]
    running = [tasks.supervise("case-commit", case_commit.run, health),
               tasks.supervise("update-commit", update_commit.run, health),
               tasks.supervise("hook-commit", hook_commit.run, health)]
    yield
    await tasks.stop(*running)


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The inbox worker and the outbox lanes; the Telegram lane (and poller) only while this
    instance holds the `telegram` leadership — Telegram's limits are per bot."""
    settings, clock = app[SETTINGS], app[CLOCK]
    bot = app.get(BOT)
    worker = instance_name(settings)
    # one lane per registered channel that can send now, paced as the channel says
    outgoing = [out for out in (c.outgoing() for c in app[SERVICES].channels) if out is not None]
    lanes = [
        Lane(out.sender, clock, worker, rate=out.rate, chat_interval=out.chat_interval,
             batch=settings.outbox_batch, lease=settings.outbox_lease_seconds,
             max_attempts=settings.outbox_max_attempts, poll_seconds=settings.outbox_poll_seconds,
             linger=settings.batch_linger_ms / 1000,
             metrics=app[METRICS])
        for out in outgoing
    ]
    dispatcher = Dispatcher(lanes)
    inbox = Inbox(app[SERVICES], dispatcher.notify, linger=settings.batch_linger_ms / 1000)
    inbox.set_aside_hook = app[METRICS].unread
    sign_in = SignInWorker(app[SERVICES], dispatcher.notify)
    app[DISPATCHER], app[INBOX], app[SIGN_IN] = dispatcher, inbox, sign_in
    running = []
    health = app[HEALTH]
    if app[OPTIONS]["run_workers"]:
        inbox.beat = lambda: health.up("inbox")
        running.append(tasks.supervise("inbox", inbox.run, health, settle=None))
        sign_in.beat = lambda: health.up("sign-in")
        running.append(tasks.supervise("sign-in", sign_in.run, health, settle=None))
        gated = {"telegram"} if settings.telegram_single_sender else set()
        for lane in lanes:
            lane.beat = (lambda name: lambda: health.up(name))(f"outbox-{lane.channel}")
        running += [tasks.supervise(f"outbox-{lane.channel}", lane.run, health, settle=None)
                    for lane in lanes if lane.channel not in gated]
        # signed files of new cases, verified behind the intake (handlers/signature_check.py)
        verify = signature_check.child_verifier(settings.signature_roots_pem())
        running.append(tasks.supervise("signatures", lambda: signature_check.run(
            verify, clock.now, lambda: health.up("signatures"), asyncio.sleep), health,
            settle=None))
        if bot is not None and settings.telegram_single_sender:
            running.append(tasks.supervise("telegram-leadership", lambda: telegram_leadership(
                app, dispatcher.lanes["telegram"], bot, worker), health))
    yield
    await tasks.stop(*running)


async def telegram_leadership(app: web.Application, lane: Lane, bot: Bot, holder: str) -> None:
    """Hold (or wait for) the `telegram` role; run the lane and the poller while held."""
    settings, clock, health = app[SETTINGS], app[CLOCK], app[HEALTH]
    ttl = timedelta(seconds=settings.leader_ttl_seconds)
    held: list[asyncio.Task] = []
    try:
        while True:
            try:
                mine = await leadership.acquire("telegram", holder, clock.now(), ttl)
            except Exception:
                log.exception("leadership check failed")
                mine = False
            if mine and not held:
                log.info("%s now sends Telegram messages", holder)
                held.append(tasks.supervise("outbox-telegram", lane.run, health, settle=None))
                if settings.telegram_mode == "polling":
                    held.append(tasks.supervise("telegram-poller", lambda: poll_forever(
                        bot, clock.now, app[INBOX].notify), health))
            elif not mine and held:
                log.warning("%s lost the Telegram role", holder)
                await tasks.stop(*held)
                held.clear()
                health.forget("outbox-telegram")
                health.forget("telegram-poller")
            await asyncio.sleep(settings.leader_ttl_seconds / 3)
    finally:
        await tasks.stop(*held)
        if held:
            try:
                await leadership.release("telegram", holder, clock.now())
            except Exception:
                log.warning("could not release the Telegram role", exc_info=True)


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Announcement fan-out right after `POST /api/v1/announcements` answered 202."""
    wake = asyncio.Event()
    app[PUBLISHER] = wake

    async def run() -> None:
        from handlers.announcements import scheduled_run

        while True:
            await wake.wait()
            wake.clear()
            try:
                summary = await scheduled_run(app[SERVICES])
                log.info("announcements published: %s", summary)
            except Exception:
                log.exception("announcement fan-out failed; the scheduled job will retry")
            app[DISPATCHER].notify()

    task = tasks.supervise("publisher", run, app[HEALTH]) if app[OPTIONS]["run_workers"] else None
    yield
    if task is not None:
        await tasks.stop(task)


async def wake_worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Intake process (`EMIL_WORKER_PROCESS`): what would wake the inbox, the outbox or
    the announcement publisher here wakes them in the worker process instead."""
    settings = app[SETTINGS]
    notifier = wakeup.Notifier(settings.database_url, quiet=settings.batch_linger_ms / 1000)
    app[INBOX].elsewhere = lambda: notifier.notify(wakeup.INBOX)
    app[DISPATCHER].elsewhere = lambda: notifier.notify(wakeup.OUTBOX)
    app[SIGN_IN].elsewhere = lambda: notifier.notify(wakeup.SIGN_IN)
    publish = app[PUBLISHER]

    async def forward_publish() -> None:
        while True:
            await publish.wait()
            publish.clear()
            notifier.notify(wakeup.PUBLISH)

    forwarding = tasks.supervise("publish-forward", forward_publish, app[HEALTH])
    yield
    await tasks.stop(forwarding)
    await notifier.close()


async def worker_wakeups_ctx(app: web.Application) -> AsyncIterator[None]:
    """Worker process: the intake's notifications wake the inbox, lanes and publisher."""
    ready = asyncio.Event()
    listening = tasks.supervise("wake-listener", lambda: wakeup.listen(
        app[SETTINGS].database_url, {
            wakeup.INBOX: app[INBOX].notify,
            wakeup.OUTBOX: app[DISPATCHER].notify,
            wakeup.PUBLISH: app[PUBLISHER].set,
            wakeup.SIGN_IN: app[SIGN_IN].notify,
        }, ready=ready.set), app[HEALTH])
    try:
        await asyncio.wait_for(ready.wait(), 10)
    except TimeoutError:
        log.warning("not listening for wake-ups yet; the worker polls meanwhile")
    yield
    await tasks.stop(listening)


async def smtp_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiosmtpd in the app's own loop (its Controller would run a second loop in a thread)."""
    settings = app[SETTINGS]
    if not app[OPTIONS]["start_listeners"]:
        yield
        return
    handler = GatewaySMTPHandler(settings.mail_domain, router.MAILBOXES, app[CLOCK].now,
                                 on_stored=app[INBOX].notify,
                                 limiter=app[SERVICES].limits.mail_cases_per_sender,
                                 peer_limiter=app[SERVICES].limits.mail_per_peer,
                                 trusted_peers=trusted_networks(settings.smtp_trusted_peers),
                                 bounce_key=app[SERVICES].signing_secret.encode())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        smtp_factory(handler, settings.smtp_max_size, settings.mail_domain),
        settings.smtp_host, settings.smtp_port)
    app[SMTP_PORT] = server.sockets[0].getsockname()[1]
    app[STATE]["smtp"] = True
    log.info("SMTP listening on %s:%s", settings.smtp_host, app[SMTP_PORT])
    yield
    app[STATE]["smtp"] = False
    server.close()
    await server.wait_closed()


def create_app(settings: Settings, *, clock: Clock | None = None, start_listeners: bool = True,
               run_workers: bool = True, role: str = "all",
               channels: Iterable[Channel] = ()) -> web.Application:
    """The whole gateway. Tests pass a frozen clock, and `start_listeners=False` for an app
    without the SMTP socket; `run_workers=False` leaves draining to the test; `channels`
    registers channels beyond email and Telegram (handlers/channels.py).

    With `EMIL_WORKER_PROCESS` this app is the intake and starts the worker process, whose
    app is built with `role="worker"` (`gateway/worker_process.py`)."""
    if role == "worker":
        start_listeners, run_workers = False, True
    elif settings.worker_process:
        role, run_workers = "intake", False
    # the ceiling of any body; each route reads with its own, smaller limit
    # (gateway/validate.py: anonymous JSON 64 KiB, hooks EMIL_HOOK_MAX_BYTES)
    largest = max(settings.hook_max_bytes, settings.attachment_max_size * 4 // 3 + 65536)
    app = web.Application(middlewares=[errors_middleware, body_deadline],
                          client_max_size=largest)
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[METRICS] = GatewayMetrics()
    app[HEALTH] = tasks.Health(on_restart=app[METRICS].restarted)
    app[STATE] = {"store": True, "outbox": True}
    # built before start-up: a channel's own callbacks are routes, mounted below
    registry = build_channels(settings, lambda: app.get(BOT), channels,
                              bounce_key=lambda: app[SERVICES].signing_secret.encode(),
                              services=lambda: app.get(SERVICES))
    app[OPTIONS] = {"start_listeners": start_listeners, "run_workers": run_workers,
                    "channels": registry}
    by_role: dict[str, list[Callable[[web.Application], AsyncIterator[None]]]] = {
        "all": [], "intake": [wake_worker_ctx, worker_process_ctx(create_app)],
        "worker": [worker_wakeups_ctx]}
    split = by_role[role]
    for ctx in (store_ctx, services_ctx, bot_ctx, workers_ctx, commit_ctx, publisher_ctx,
                *split, smtp_ctx, scheduler_ctx):
        app.cleanup_ctx.append(ctx)
    api.setup(app)
    hooks.setup(app)
    mount_callbacks(app, registry)
    openapi.setup(app)
    pages.setup(app)
    console.setup(app)
    return app
