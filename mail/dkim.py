"""DKIM signing of outgoing mail (RFC 6376), with dkimpy; and the key pair that goes with it.

The big mailbox providers' bulk-sender rules (Gmail and Yahoo, since February 2024) ask
for DKIM aligned with the `From:` domain, so the signature's `d=` is EMIL_MAIL_DOMAIN,
the domain of every address we send from. `relaxed/relaxed` canonicalisation survives
relays that re-fold headers or touch trailing whitespace; `rsa-sha256` is what every
verifier takes (ed25519 is not yet accepted everywhere, RFC 8463 says sign with both).

The signed headers are the ones a forger would change to reuse our signature for their
own mail: origin and destination, subject and date, the thread, the RFC 8058
unsubscribe headers (RFC 8058 section 4: `List-Unsubscribe` and `List-Unsubscribe-Post`
MUST be covered), `List-Id` and the MIME headers. A header listed but absent is signed
as absent, so it cannot be added on the way either.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import dkim

#: RFC 6376 section 5.4.1's list, narrowed to what we write
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
)

#: RFC 8301 section 3.2: at least 1024 bits, 2048 recommended (and a TXT record of a
#: 2048-bit key still fits one DNS answer as two strings)
KEY_BITS = 2048


class DkimKeyError(ValueError):
    """The configured key cannot be read or is not an RSA private key."""


@dataclass(frozen=True)
class DkimSigner:
    """Signs finished messages for one selector and domain."""

    selector: str
    domain: str
    private_key: bytes

    def sign(self, message: bytes) -> bytes:
        """`message` with a `DKIM-Signature:` header in front, written with the message's
        own line ending (CRLF on the wire, LF in the `.eml` spool)."""
        linesep = b"\r\n" if b"\r\n" in message.partition(b"\n")[0] + b"\n" else b"\n"
        header = dkim.sign(message, self.selector.encode("ascii"), self.domain.encode("ascii"),
                           self.private_key, canonicalize=(b"relaxed", b"relaxed"),
                           signature_algorithm=b"rsa-sha256",
                           include_headers=[h.encode("ascii") for h in SIGNED_HEADERS],
                           linesep=linesep)
        return header + message


def load_signer(selector: str, key_file: str, domain: str) -> DkimSigner:
    """Read and check the private key, so that a bad key stops the start, not the first
    mail (which would otherwise fail for ever as it is retried)."""
    try:
        key = Path(key_file).read_bytes()
    except OSError as error:
        raise DkimKeyError(f"EMIL_DKIM_KEY_FILE {key_file!r} cannot be read: "
                           f"{error.strerror or error}") from None
    try:
        dkim.crypto.parse_pem_private_key(key)
    except (dkim.crypto.UnparsableKeyError, ValueError, IndexError) as error:
        raise DkimKeyError(f"EMIL_DKIM_KEY_FILE {key_file!r} is not a PEM RSA private key: "
                           f"{error}") from None
    return DkimSigner(selector=selector, domain=domain, private_key=key)


def generate_key(path: str, selector: str, domain: str, bits: int = KEY_BITS) -> str:
    """Write a new RSA private key to `path` (mode 0600, never over an existing file) and
    return the DNS TXT record that publishes its public half (RFC 6376 section 3.6.1)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    # O_EXCL: an existing key (published in DNS) is never replaced by accident; 0600 from
    # the moment the file exists, not after a chmod
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return dns_record(selector, domain, base64.b64encode(public).decode("ascii"))


def dns_record(selector: str, domain: str, public_key_b64: str) -> str:
    """The zone-file line; the key is split into strings of at most 255 characters, the
    limit of one character-string in a TXT record (RFC 1035 section 3.3.14)."""
    value = f"v=DKIM1; k=rsa; p={public_key_b64}"
    chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain} IN TXT {chunks}"
