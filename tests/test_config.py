"""Settings: EMIL_* variables and .env, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import Settings


def test_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EMIL_HTTP_PORT=9090\nEMIL_MAIL_DOMAIN=milanowek.pl\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMIL_HTTP_PORT", "9191")  # the environment wins over .env
    settings = Settings()
    assert settings.http_port == 9191 and settings.mail_domain == "milanowek.pl"
    assert settings.base_url == "http://127.0.0.1:9191"
    assert settings.address("sprawy") == "sprawy@milanowek.pl"


def test_refuses_bad_and_placeholder_settings() -> None:
    with pytest.raises(ValidationError, match="polling"):
        Settings(_env_file=None, telegram_mode="carrier-pigeon")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, telegram_token="1:x", telegram_mode="webhook")  # type: ignore[call-arg]
    ready = {"production": True, "smtp_relay": "mx.milanowek.pl:25"}
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(_env_file=None, signing_secret="s" * 32,  # type: ignore[call-arg]
                 admin_token="changeme", **ready)
    # issue #11: production needs a relay (mail must leave), real whsec_ secrets, and
    # secrets of at least 32 characters; the signing secret may be left to the store
    with pytest.raises(ValidationError, match="SMTP_RELAY"):
        Settings(_env_file=None, production=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(_env_file=None, admin_token="a" * 31, **ready)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="HOOK_SECRET_REGISTER"):
        Settings(_env_file=None, hook_secret_register="whsec_not base64!")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="HOOK_SECRET_LIBRARY"):
        Settings(_env_file=None, hook_secret_library="secret")  # type: ignore[call-arg]
    assert Settings(_env_file=None, admin_token="a" * 32, **ready).production  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="SQLITE_SYNCHRONOUS"):
        Settings(_env_file=None, sqlite_synchronous="SOMETIMES")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="WORKER_PROCESS needs PostgreSQL"):
        Settings(_env_file=None, worker_process=True)  # type: ignore[call-arg]
    assert Settings(_env_file=None, worker_process=True,  # type: ignore[call-arg]
                    database_url="postgres://postgres@127.0.0.1:5432/test").worker_process
