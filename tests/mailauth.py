"""Signing test mail with DKIM and answering the DNS lookups ourselves (no network).

The key in tests/data/dkim/ exists for these tests only and signs nothing real.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from mail.authenticate import MailAuth

KEYS = Path(__file__).parent / "data" / "dkim"
SELECTOR = b"test"


def dns_for(*domains: str, policy: str = "reject"):  # type: ignore[no-untyped-def]
    """A dkimpy-style DNS function: the test key's record and a DMARC policy for each
    of `domains`, nothing for any other name."""
    public = (KEYS / "test-only.pub.b64").read_text().strip()
    records = {}
    for domain in domains:
        records[f"{SELECTOR.decode()}._domainkey.{domain}."] = f"v=DKIM1; k=rsa; p={public}"
        records[f"_dmarc.{domain}."] = f"v=DMARC1; p={policy}"

    def lookup(name, timeout=5):  # type: ignore[no-untyped-def]
        key = name.decode() if isinstance(name, bytes) else name
        key = key if key.endswith(".") else key + "."
        value = records.get(key)
        if value is None:
            return None
        # dkimpy reads the TXT record as bytes; authheaders' DMARC lookup as text
        return value if key.startswith("_dmarc.") else value.encode()

    return lookup


def sign(raw: bytes, domain: str) -> bytes:
    """`raw` with a DKIM-Signature of `domain` prepended."""
    private = (KEYS / "test-only.key").read_bytes()
    signature = dkim.sign(raw, SELECTOR, domain.encode(), private,
                          include_headers=[b"from", b"to", b"subject", b"message-id"])
    return signature + raw


def verifying(*domains: str) -> MailAuth:
    return MailAuth(authserv_id="milanowek.example", dnsfunc=dns_for(*domains))
