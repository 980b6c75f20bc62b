"""`emilanowek` — the command line (click)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from gateway.auth import SCOPES
from gateway.config import Settings
from gateway.imports import IMPORTERS
from gateway.jobs import jobs
from gateway.logs import setup_logging

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as error:  # pydantic's message names the variable
        raise click.ClickException(f"bad configuration: {error}") from None


def _with_store(work: Callable[[Settings], Awaitable[T]]) -> T:
    """Open the store (migrated), run `work`, close the store."""
    from store.db import Store

    settings = _settings()

    async def main() -> T:
        store = Store(settings.database_url, settings.sqlite_synchronous)
        await store.open(migrate=True)
        try:
            return await work(settings)
        finally:
            await store.close()

    return asyncio.run(main())


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """e-Milanówek gateway: the town's e-services by email, Telegram and webhooks."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)


@main.command()
def serve() -> None:
    """Run the gateway: HTTP, SMTP, bot, outbox and scheduler (the last three in a second
    process with EMIL_WORKER_PROCESS=true)."""
    from aiohttp import web

    from gateway.app import create_app

    settings = _settings()
    web.run_app(create_app(settings), host=settings.http_host, port=settings.http_port,
                print=lambda line: click.echo(line.strip()), access_log=None)


@main.command()
def migrate() -> None:
    """Apply schema migrations."""
    from store.db import Store

    async def work(settings: Settings) -> list[str]:
        store = Store(settings.database_url, settings.sqlite_synchronous)
        await store.open(migrate=False)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = asyncio.run(work(_settings()))
    click.echo("\n".join(f"applied {name}" for name in applied) or "nothing to apply")


@main.command("link-code")
@click.argument("person_id", type=int)
def link_code(person_id: int) -> None:
    """Print a one-time code (and deep link) to link a Telegram chat to PERSON_ID."""
    from datetime import timedelta

    from handlers.accounts import create_link_code
    from store.clock import Clock
    from store.models import Person

    async def work(settings: Settings) -> str:
        person = await Person.get_or_none(id=person_id)
        if person is None:
            raise click.ClickException(f"no person with id {person_id}")
        entry = await create_link_code(person, Clock().now(),
                                       timedelta(minutes=settings.link_code_ttl_minutes))
        return entry.code

    code = _with_store(work)
    click.echo(code)
    click.echo(f"/start {code}", err=True)


@main.group("api-key")
def api_key() -> None:
    """Manage API keys."""


@api_key.command("create")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(list(SCOPES)))
@click.option("--label", default="", help="Who or what the key is for.")
def api_key_create(scopes: tuple[str, ...], label: str) -> None:
    """Print a new key once (only its hash is kept)."""
    from gateway.auth import create_key

    async def work(settings: Settings) -> str:
        return await create_key(list(scopes), label)

    click.echo(_with_store(work))


@api_key.command("list")
def api_key_list() -> None:
    """List keys by id, label and scopes (never the keys themselves)."""
    from gateway.auth import list_keys

    for key in _with_store(lambda settings: list_keys()):
        state = "revoked" if key["revoked"] else "active"
        click.echo(f"{key['id']}\t{state}\t{','.join(key['scopes'])}\t{key['label']}")


@api_key.command("revoke")
@click.argument("key_id", type=int)
def api_key_revoke(key_id: int) -> None:
    """Revoke a key: it is refused from the next request on."""
    from gateway.auth import revoke_key

    if not _with_store(lambda settings: revoke_key(key_id)):
        raise click.ClickException(f"no API key with id {key_id}")
    click.echo(f"key {key_id} revoked")


@main.group("dkim")
def dkim_group() -> None:
    """DKIM signing of outgoing mail."""


@dkim_group.command("keygen")
@click.option("--selector", envvar="EMIL_DKIM_SELECTOR", required=True,
              help="The DKIM selector (default: EMIL_DKIM_SELECTOR).")
@click.option("--key-file", envvar="EMIL_DKIM_KEY_FILE", required=True,
              type=click.Path(dir_okay=False, writable=True),
              help="Where to write the private key (default: EMIL_DKIM_KEY_FILE).")
@click.option("--domain", envvar="EMIL_MAIL_DOMAIN", default="milanowek.example",
              show_default=True, help="The signing domain (default: EMIL_MAIL_DOMAIN).")
def dkim_keygen(selector: str, key_file: str, domain: str) -> None:
    """Write a new private key (mode 0600, never over an existing file) and print the DNS
    TXT record to publish before setting EMIL_DKIM_SELECTOR and EMIL_DKIM_KEY_FILE."""
    from mail.dkim import generate_key

    try:
        record = generate_key(key_file, selector, domain)
    except FileExistsError:
        raise click.ClickException(f"{key_file} exists: a published key is never "
                                   "overwritten; choose another file (and selector)") from None
    except OSError as error:
        raise click.ClickException(f"cannot write {key_file}: {error.strerror}") from None
    click.echo(f"private key written to {key_file}", err=True)
    click.echo(record)


@main.command("run-job")
@click.argument("name", type=click.Choice([job.name for job in jobs()]))
def run_job_command(name: str) -> None:
    """Run one scheduled job now and print what it did."""
    from gateway.app import build_services
    from gateway.jobs import run_job
    from store.clock import Clock

    async def work(settings: Settings) -> dict[str, Any]:
        return await run_job(build_services(settings, Clock()), name)

    click.echo(json.dumps(_with_store(work), ensure_ascii=False, indent=2, default=str))


@main.command("import")
@click.argument("kind", type=click.Choice(list(IMPORTERS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_command(kind: str, file: str) -> None:
    """Bulk import from CSV; re-running the same file changes nothing."""
    from gateway.app import build_services
    from gateway.imports import run_import
    from store.clock import Clock

    async def work(settings: Settings) -> Any:
        return await run_import(build_services(settings, Clock()), kind, file,
                                max_bytes=settings.import_max_bytes)

    report = _with_store(work)
    click.echo(report.summary())
    for line in report.errors:
        click.echo(line, err=True)
    if report.errors:
        raise SystemExit(1)


@main.command("export")
@click.argument("person_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write the JSON here instead of printing it.")
def export_command(person_id: int, out: str | None) -> None:
    """RODO access request: everything held about PERSON_ID as one JSON document."""
    from tortoise.transactions import in_transaction

    from gateway.app import build_channels
    from handlers import audit, rodo
    from store.clock import Clock

    async def work(settings: Settings) -> dict[str, Any] | None:
        async with in_transaction():
            found = await rodo.export(person_id, channels=build_channels(settings))
            if found is not None:
                now = Clock().now()
                found["exported_at"] = now.isoformat()
                await audit.record(_operator(), "person.export", f"person:{person_id}", now)
        return found

    found = _with_store(work)
    if found is None:
        raise click.ClickException(f"no person with id {person_id}")
    text = json.dumps(found, ensure_ascii=False, indent=2, default=str)
    if out:
        with open(out, "w", encoding="utf-8") as file:
            file.write(text)
        click.echo(f"written to {out}", err=True)
    else:
        click.echo(text)


@main.command("erase")
@click.argument("person_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(person_id: int, yes: bool) -> None:
    """RODO erasure: remove PERSON_ID and their data; cases the town keeps are anonymised."""
    from gateway.app import build_channels
    from handlers import rodo
    from store.clock import Clock

    if not yes:
        typed = click.prompt(f"This erases person {person_id} for good. Type the id again "
                             "to confirm", default="", show_default=False)
        if typed.strip() != str(person_id):
            raise click.ClickException("not confirmed: nothing was erased")

    async def work(settings: Settings) -> dict[str, Any] | None:
        return await rodo.erase(person_id, _operator(), Clock().now(),
                                channels=build_channels(settings),
                                spool_dir=settings.sent_mail_dir)

    done = _with_store(work)
    if done is None:
        raise click.ClickException(f"no person with id {person_id}")
    click.echo(json.dumps(done, ensure_ascii=False))


def _operator() -> Any:
    """The command line's actor in the audit trail: the operating-system user."""
    import getpass

    from handlers.audit import Actor

    return Actor(label=f"{getpass.getuser()} (wiersz poleceń)", source="cli")


if __name__ == "__main__":  # pragma: no cover
    main()
