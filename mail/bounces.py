"""Bounces of our own mail: the bounce address of each message (VERP) and what a report says.

Every message leaves with its own envelope sender, `bounce+<outbox id>-<mac>@domain`
(variable envelope return path, D. J. Bernstein's VERP): a bounce is sent to it (RFC 5321
section 4.5.5) and so names the very message that failed, whatever the bounce's own format.
The MAC (HMAC-SHA256 of the id under the stored signing secret, 64 bits) lets SMTP `RCPT`
refuse an address nobody was given, so a forger cannot mark somebody's address failing.

A report is read with `flufl.bounce` (GNU Mailman's detectors: DSN, Postfix, qmail, Exim,
Yahoo, AOL and dozens of other formats): permanent failures are hard, temporary ones
soft. A feedback-loop report (ARF, RFC 5965: `multipart/report;
report-type=feedback-report`) is a complaint: the person marked our mail as spam.

Pure functions, no I/O.
"""

from __future__ import annotations

import email
import hashlib
import hmac
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

from flufl.bounce import all_failures

#: the local part's prefix of every bounce address
PREFIX = "bounce"
HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"


def _mac(outbox_id: int, key: bytes) -> str:
    return hmac.new(key, f"bounce:{outbox_id}".encode(), hashlib.sha256).hexdigest()[:16]


def bounce_address(outbox_id: int, key: bytes, domain: str) -> str:
    return f"{PREFIX}+{outbox_id}-{_mac(outbox_id, key)}@{domain}"


def is_bounce_mailbox(local: str) -> bool:
    return local.lower().partition("+")[0] == PREFIX


def bounced_outbox(local: str, key: bytes) -> int | None:
    """The outbox id a bounce address's local part names, if its MAC is ours."""
    prefix, plus, rest = local.lower().partition("+")
    number, dash, mac = rest.partition("-")
    if prefix != PREFIX or not plus or not dash or not number.isdigit() or len(number) > 18:
        return None
    outbox_id = int(number)
    return outbox_id if hmac.compare_digest(mac, _mac(outbox_id, key)) else None


@dataclass(frozen=True)
class Report:
    """What a bounce says: hard, soft, complaint, or None (not a report we can read)."""

    kind: str | None
    addresses: frozenset[str] = frozenset()
    detail: str = ""


def read_report(raw: bytes) -> Report:
    # flufl.bounce's detectors walk compat32 messages (its own tests parse them so)
    msg = email.message_from_bytes(raw)
    if (msg.get_content_type() == "multipart/report"
            and collapse_rfc2231_value(msg.get_param("report-type") or "").lower() == "feedback-report"):
        return Report(COMPLAINT, frozenset(), _feedback_type(msg))
    temporary, permanent = all_failures(msg)
    if permanent:
        return Report(HARD, _text(permanent), "permanent failure")
    if temporary:
        return Report(SOFT, _text(temporary), "temporary failure")
    return Report(None)


def _text(addresses: frozenset[bytes]) -> frozenset[str]:
    return frozenset(a.decode("utf-8", "replace").lower() for a in addresses)


def _feedback_type(msg: Message) -> str:
    """RFC 5965 section 3.1: the second part's `Feedback-Type` (abuse, fraud, …)."""
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            body = part.get_payload()
            text = (body[0].as_string() if isinstance(body, list) and body and isinstance(body[0], Message)
                    else str(body))
            for line in text.splitlines():
                name, _, value = line.partition(":")
                if name.strip().lower() == "feedback-type":
                    return f"complaint: {value.strip()[:50]}"
    return "complaint"
