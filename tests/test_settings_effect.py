"""Issue #11, "settings that do nothing": each setting has an effect, shown here; API
keys can be listed and revoked (CLI and API)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import Settings
from gateway.jobs import run_job
from gateway.keys import SERVICES
from store.models import HookDelivery, JobRun, LinkCode, Person, RawInbound
from store.secrets import stored_secret
from tests.conftest import Gateway


async def test_retention_days_is_the_setting(gw: Gateway) -> None:
    gw.services.retention_days = 30
    await RawInbound.create(channel="email", external_id="old", payload=b"x", status="done",
                            received_at=gw.clock.now() - timedelta(days=31))
    await RawInbound.create(channel="email", external_id="new", payload=b"x", status="done",
                            received_at=gw.clock.now() - timedelta(days=29))
    summary = await run_job(gw.services, "retention")
    assert summary["raw_inbound_deleted"] == 1
    assert await RawInbound.filter(external_id="new").exists()


async def test_quiet_hours_of_new_people_come_from_the_settings(
        aiohttp_client, settings: Settings, clock) -> None:  # type: ignore[no-untyped-def]
    quiet = settings.model_copy(update={"quiet_start": "21:30", "quiet_end": "06:15"})
    client: TestClient = await aiohttp_client(create_app(quiet, clock=clock, run_workers=False))
    resp = await client.post("/api/v1/people", json={"name": "Nowa", "roles": ["parent"]},
                             headers={"Authorization": f"Bearer {settings.admin_token}"})
    person = await Person.get(id=(await resp.json())["id"])
    assert (person.quiet_start, person.quiet_end) == ("21:30", "06:15")


async def test_without_a_signing_secret_every_process_shares_the_stored_one(
        aiohttp_client, settings: Settings, clock) -> None:  # type: ignore[no-untyped-def]
    unset = settings.model_copy(update={"signing_secret": None})
    app: TestClient = await aiohttp_client(create_app(unset, clock=clock, run_workers=False))
    used = app.app[SERVICES].signing_secret
    # what another process, instance or the next start reads: the same row
    again = await stored_secret("signing", clock.now())
    assert used and used == again and len(used) >= 32


async def test_api_keys_are_listed_and_revoked_over_the_api(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/api-keys", headers=gw.admin,
                                json={"scopes": ["cases"], "label": "formularz WWW"})
    created = await resp.json()
    assert resp.status == 201 and created["key"].startswith("emk_")
    listing = await (await gw.client.get("/api/v1/api-keys", headers=gw.admin)).json()
    [entry] = listing["keys"]
    assert entry["label"] == "formularz WWW" and "key" not in entry
    assert created["key"] not in str(listing)
    own = {"Authorization": f"Bearer {created['key']}"}
    event = {"note": "x"}
    assert (await gw.client.get("/api/v1/api-keys", headers=own)).status == 403
    assert (await gw.client.post("/api/v1/cases/UM-2026-000001/events", headers=own,
                                 json=event)).status == 404  # authorised, no such case
    resp = await gw.client.delete(f"/api/v1/api-keys/{entry['id']}", headers=gw.admin)
    assert resp.status == 200
    assert (await gw.client.post("/api/v1/cases/UM-2026-000001/events", headers=own,
                                 json=event)).status == 401  # refused at once


def test_api_keys_by_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "EMIL_DATABASE_URL": f"sqlite://{tmp_path}/cli.db"}
    env.pop("EMIL_TEST_DATABASE_URL", None)

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "gateway", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    key = cli("api-key", "create", "--scope", "library", "--label", "biblioteka").strip()
    listed = cli("api-key", "list")
    assert "biblioteka" in listed and "active" in listed and key not in listed
    key_id = listed.split("\t", 1)[0]
    assert "revoked" in cli("api-key", "revoke", key_id)
    assert "\trevoked\t" in cli("api-key", "list")


async def test_job_run_hook_and_link_code_periods_are_the_settings(
        aiohttp_client, settings: Settings, clock) -> None:  # type: ignore[no-untyped-def]
    """EMIL_RETAIN_JOB_RUN_DAYS, EMIL_RETAIN_HOOK_DAYS, EMIL_RETAIN_LINK_CODE_DAYS (issue
    #18, fault 15): each row goes one day after its setting, and not one day before."""
    shorter = settings.model_copy(update={"retain_job_run_days": 3, "retain_hook_days": 5,
                                          "retain_link_code_days": 2})
    client: TestClient = await aiohttp_client(create_app(shorter, clock=clock, run_workers=False))
    now = clock.now()
    for age in (2, 4):
        await JobRun.create(job="attendance-gather", due=f"age-{age}",
                            started_at=now - timedelta(days=age))
    await JobRun.create(job="attendance-gather", due="now", started_at=now)
    for age in (4, 6):
        await HookDelivery.create(webhook_id=f"register:age-{age}", source="register",
                                  response={}, received_at=now - timedelta(days=age))
    person = await Person.create(name="Jan")
    for age in (1, 3):
        await LinkCode.create(code=f"CODE{age}", person=person,
                              expires_at=now - timedelta(days=age))
    summary = await run_job(client.app[SERVICES], "retention")
    assert summary["job_runs_deleted"] == 1
    assert not await JobRun.exists(due="age-4") and await JobRun.exists(due="age-2")
    assert await HookDelivery.all().values_list("webhook_id", flat=True) == ["register:age-4"]
    assert await LinkCode.all().values_list("code", flat=True) == ["CODE1"]


def test_a_hook_id_is_kept_longer_than_senders_retry() -> None:
    """Shorter than Stripe's three days of retries, a retried hook would be applied
    again: the setting refuses it."""
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retain_hook_days=3)  # type: ignore[call-arg]
