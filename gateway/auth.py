"""Scoped bearer API keys, stored as SHA-256 only; the bootstrap admin token has all scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from store.models import ApiKey

SCOPES = ("admin", "cases", "announce", "library", "register")
KEY_PREFIX = "emk_"


#: the name the request's key goes by in the audit trail
CALLER = web.RequestKey("caller", str)
#: the request's key's scopes, which the use-cases' permission rules read (handlers/audit.Actor)
CALLER_SCOPES = web.RequestKey("caller_scopes", frozenset)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(scopes: list[str], label: str = "") -> str:
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await ApiKey.create(key_hash=hash_key(key), scopes=sorted(set(scopes)), label=label)
    return key


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def caller_of(token: str | None, admin_token: str | None) -> tuple[set[str], str]:
    """The scopes of a bearer token and the name it goes by in the audit trail."""
    if not token:
        return set(), ""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return set(SCOPES), "EMIL_ADMIN_TOKEN"
    key = await ApiKey.get_or_none(key_hash=hash_key(token), revoked=False)
    if key is None:
        return set(), ""
    label = f"API key #{key.id}" + (f" ({key.label})" if key.label else "")
    return (set(SCOPES) if "admin" in key.scopes else set(key.scopes)), label


async def scopes_of(token: str | None, admin_token: str | None) -> set[str]:
    return (await caller_of(token, admin_token))[0]


async def require(request: web.Request, scope: str, admin_token: str | None) -> None:
    """Refuse without a key holding `scope`; otherwise note the caller on the request
    (`request["caller"]`, for the audit trail)."""
    token = bearer(request)
    scopes, label = await caller_of(token, admin_token)
    if not token or not scopes:
        raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer …)")
    if scope not in scopes:
        raise ApiError(403, "forbidden", f"this key lacks the '{scope}' scope")
    request[CALLER] = label
    request[CALLER_SCOPES] = frozenset(scopes)


async def list_keys() -> list[dict[str, Any]]:
    """Keys by id, label, scopes and state — never the key (only its hash is kept)."""
    return [{"id": k.id, "label": k.label, "scopes": k.scopes, "revoked": k.revoked,
             "created_at": k.created_at.isoformat()}
            for k in await ApiKey.all().order_by("id")]


async def revoke_key(key_id: int) -> bool:
    """Refuse the key from the next request on; False if there is no such key."""
    return bool(await ApiKey.filter(id=key_id).update(revoked=True))
