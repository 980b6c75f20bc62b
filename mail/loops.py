"""Which mail must never be answered (RFC 3834 and what real robots send).

Pure functions over headers: no I/O, easy to test against a corpus.
"""

from __future__ import annotations

from email.message import EmailMessage

AUTO_SUBMITTED_VALUE = "auto-generated"
LOOP_HEADER = "X-Loop"


def automatic_reason(msg: EmailMessage, envelope_from: str, our_domain: str) -> str | None:
    """Why this message is automatic (and must get no reply), or None for a person's mail."""
    if not envelope_from or envelope_from == "<>":
        return "null return path (bounce)"
    local = envelope_from.split("@", 1)[0].lower()
    if local in ("mailer-daemon", "postmaster"):
        return f"sender {local}"
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    if msg.get("X-Auto-Response-Suppress"):
        return "X-Auto-Response-Suppress"
    for loop in msg.get_all(LOOP_HEADER, []):
        if our_domain.lower() in str(loop).lower():
            return "X-Loop: ours"
    if msg.get("List-Id") or msg.get("List-Unsubscribe"):
        return "mailing list"
    if msg.get_content_type() == "multipart/report":
        return "delivery report"
    return None
