"""Who sent a message: the one place that decides (issue #11).

Telegram proves a chat for us: an update's chat id is Telegram's word. Mail proves
nothing by itself: the sender is the `From` address (never `Reply-To`, which anyone sets),
and our answers go there, so a forger can only make us write to the real owner. Before
mail may *change* anything for an address — add to a case, renew loans, open a case under
a registered person, draft or confirm an announcement — it must prove it comes from that
mailbox, one of:

- `thread`: it replies (`In-Reply-To` / `References`) to a Message-ID we sent to that
  address — only its reader can know one;
- `dmarc`: its From domain passed DMARC (mail/authenticate.py);
- `code`: it carries the access code of the case it is about (checked in handlers/cases.py).

Without proof the sender is asked to reply to our message, and nothing is changed.
"""

from __future__ import annotations

from handlers.message import InboundMessage, UserFacingError
from store.models import SentMail


async def prove(msg: InboundMessage) -> None:
    """Fill `msg.proof` for mail ("dmarc", "thread" or None); Telegram is always proven."""
    if msg.channel != "email":
        msg.proof = "telegram"
        return
    if msg.proof:  # "dmarc", decided when the mail was parsed
        return
    if msg.references and await SentMail.filter(message_id__in=msg.references[-50:],
                                                recipient=msg.address).exists():
        msg.proof = "thread"


def require_proof(msg: InboundMessage) -> None:
    """Stop here with the "reply to our message" answer unless the sender is proven."""
    if not msg.proof:
        raise UserFacingError("proof_needed", mailbox=msg.mailbox)
