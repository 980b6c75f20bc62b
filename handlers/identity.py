"""Who sent a message: proven by its channel, or not at all (issues #11, #19).

Each channel proves its senders in its own module (handlers/channels.py; the registry's
`prove` fills `msg.proof`), and a channel that does not is closed: its senders are
unproven. Telegram proves a chat (bots/channel.py): an update's chat id is Telegram's
word. Mail proves nothing by itself (mail/channel.py): the sender is the `From` address,
never `Reply-To`, and before mail may *change* anything for an address — add to a case,
renew loans, open a case under a registered person, draft or confirm an announcement —
it must prove it comes from that mailbox, one of:

- `thread`: it replies (`In-Reply-To` / `References`) to a Message-ID we sent to that
  address — only its reader can know one;
- `dmarc`: its From domain passed DMARC (mail/authenticate.py);
- `code`: it carries the access code of the case it is about (checked in handlers/cases.py).

Without proof the sender is asked to reply to our message, and nothing is changed.
"""

from __future__ import annotations

from handlers.message import InboundMessage, UserFacingError


def require_proof(msg: InboundMessage) -> None:
    """Stop here with the "reply to our message" answer unless the sender is proven."""
    if not msg.proof:
        raise UserFacingError("proof_needed", mailbox=msg.mailbox)
