"""The one message type every channel turns its wire format into, and what handlers return.

Channels (`mail/`, `bots/`) build an :class:`InboundMessage`; handlers answer with
:class:`Reply` objects, which the router renders and queues in the outbox. Nothing here
knows SMTP or the Bot API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class InboundMessage:
    """One thing a person said to us, whatever the channel.

    Attributes:
        channel: "email" or "telegram".
        address: the sender's address on that channel (email address, chat id).
        text: the body as plain text.
        command: the command word without the slash, lower-cased ("sprawa"), or None.
        args: the words after the command.
        subject: the email subject (None on Telegram).
        mailbox: the service mailbox an email was sent to ("sprawy", "biblioteka", …).
        message_id: the channel's id of this message (Message-ID, Telegram message id).
        references: Message-IDs this email answers (In-Reply-To then References).
        callback: data of a pressed inline button, if that is what this is.
        proof: how the sender is proven (see handlers/identity.py).
        private: False for a Telegram group, supergroup or channel.
        inbound_id: the stored raw message's id, which makes reply keys idempotent.
    """

    channel: str
    address: str
    text: str = ""
    command: str | None = None
    args: list[str] = field(default_factory=list)
    subject: str | None = None
    mailbox: str | None = None
    message_id: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    callback: str | None = None
    callback_id: str | None = None
    display_name: str = ""
    inbound_id: int = 0
    language_hint: str | None = None
    #: how the sender is proven (handlers/identity.py): "telegram", "dmarc", "thread",
    #: or None for mail that proves nothing
    proof: str | None = None
    #: Telegram: whether the chat is a private one (groups may not link or see personal data)
    private: bool = True
    #: Telegram: the text of the message this one replies to (ours, about a case)
    replying_to: str = ""
    #: Telegram: files the update names (file_id, name, size, type), fetched by the inbox
    remote_files: list[dict[str, Any]] = field(default_factory=list)
    #: attachments too large to keep: (file name, size in bytes), listed in the case text
    too_large: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Reply:
    """A message back to the sender, on the channel they wrote from.

    `template` names `templates/<lang>/<template>.<channel>.j2`; `case` threads an email
    reply into the case's conversation (subject tag and Message-ID bookkeeping).
    """

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    case: str | None = None
    buttons: list[list[tuple[str, str]]] | None = None


class UserFacingError(Exception):
    """A problem the person caused and may be told about, through a template key."""

    def __init__(self, template: str, **context: Any) -> None:
        super().__init__(template)
        self.template = template
        self.context = context


class InvalidInput(Exception):
    """Input from an integration that breaks the contract: names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
