"""Is this mail really from its `From` domain? DMARC, checked by maintained libraries.

Two sources of an answer, chosen by settings:
- `EMIL_SMTP_TRUSTED_AUTHSERV` set: the upstream MTA (the town's mail server, which sees
  the sending IP and does SPF) has put an `Authentication-Results` header (RFC 8601) at
  the top of the message; we read only the topmost one with exactly that authserv-id
  (RFC 8601 section 5: an MTA removes foreign copies of its own id, so a forged one sits
  lower down) and trust its `dmarc=pass` if its `header.from` is the From domain.
- otherwise: we verify DKIM and DMARC ourselves with `authheaders` (dkimpy underneath).
  SPF is left out: behind a relay the peer address is the relay's, not the sender's, so
  only an aligned DKIM signature can pass DMARC here. Mail without a DKIM signature is
  not looked up at all (no DNS query for the common case).

The DNS lookup is a parameter (`dnsfunc`, dkimpy's convention: name bytes → TXT bytes),
so tests sign mail with a test key and answer the lookups themselves. This runs in a
worker thread: a DNS timeout never holds the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

import authres
from authheaders import authenticate_message

log = logging.getLogger(__name__)

DnsFunc = Callable[..., bytes | None]


@dataclass(frozen=True)
class MailAuth:
    """How inbound mail is authenticated (`EMIL_SMTP_TRUSTED_AUTHSERV`, `EMIL_MAIL_AUTH`)."""

    authserv_id: str  # ours, in the results we compute
    trusted_authserv: str | None = None
    verify: bool = True  # False: nothing is verified and nothing counts as DMARC-proven
    dnsfunc: DnsFunc | None = None  # None: dkimpy's own resolver (dnspython)


def from_domain(message: Message) -> str:
    from email.utils import parseaddr

    address = parseaddr(str(message.get("From", "")))[1]
    return address.rpartition("@")[2].lower()


def _passing(header_value: str, method: str, prop_name: str) -> list[str]:
    """The `header.<prop_name>` values of the passing `method` results of one
    Authentication-Results header (none if it does not parse)."""
    try:
        parsed = authres.AuthenticationResultsHeader.parse(
            f"Authentication-Results: {header_value}")
    except Exception:  # noqa: BLE001 - a malformed header proves nothing
        return []
    return [prop.value.lower() for result in parsed.results
            if result.method == method and result.result == "pass"
            for prop in result.properties if prop.type == "header" and prop.name == prop_name]


def _dmarc_passes(header_value: str, domain: str) -> bool:
    return domain in _passing(header_value, "dmarc", "from")


def _authserv_of(header_value: str) -> str:
    return header_value.split(";", 1)[0].strip().split()[0].lower() if header_value.strip() else ""


def dmarc_pass(raw: bytes, message: Message, auth: MailAuth) -> bool:
    """True if the From domain is authenticated (DMARC pass); never raises."""
    domain = from_domain(message)
    if not domain or not auth.verify:
        return False
    if auth.trusted_authserv:
        for value in message.get_all("Authentication-Results") or []:
            if _authserv_of(str(value)) == auth.trusted_authserv.lower():
                return _dmarc_passes(str(value), domain)  # the topmost of its own only
        return False
    if message.get("DKIM-Signature") is None:
        return False
    try:
        result = authenticate_message(raw, auth.authserv_id, spf=False, dkim=True, dmarc=True,
                                      dnsfunc=auth.dnsfunc)
    except Exception:  # noqa: BLE001 - a broken signature or DNS failure is "not proven"
        log.info("DKIM/DMARC check failed for a mail from %s", domain, exc_info=True)
        return False
    value = result.split(":", 1)[1]
    return _dmarc_passes(value, domain) and _dkim_aligned(value, domain)


def _dkim_aligned(header_value: str, domain: str) -> bool:
    """A passing DKIM signature of the From domain or a parent of it (never a bare TLD).
    authheaders aligns by organizational domain from the public suffix list, under which
    `a.example` and `b.example` share one; we ask for the signer's own domain."""
    return any("." in signer and (domain == signer or domain.endswith("." + signer))
               for signer in _passing(header_value, "dkim", "d"))
