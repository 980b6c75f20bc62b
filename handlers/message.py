"""The one message type every channel turns its wire format into, and what handlers return.

Channels (`mail/`, `bots/`) build an :class:`InboundMessage`; handlers answer with
:class:`Reply` objects, which the router renders and queues in the outbox. Nothing here
knows SMTP or the Bot API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.text import clean, clean_line, mime_type_or_default


@dataclass(frozen=True)
class Attachment:
    """A file as a channel received it. Its name is cleaned of control and bidi
    characters, and its content type is a bare media type or `application/octet-stream`
    (handlers/text.py), whichever channel built it."""

    filename: str
    content_type: str
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "filename", clean_line(self.filename))
        object.__setattr__(self, "content_type", mime_type_or_default(self.content_type))


@dataclass
class InboundMessage:
    """One thing a person said to us, whatever the channel.

    Attributes:
        channel: a registered channel's name, "email" or "telegram" (handlers/channels.py).
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
    #: what a step before the inbox's transaction fetched for it: a catalogue search's
    #: answer (handlers/catalogue.prepare), so no network I/O happens inside it
    found: Any = None
    #: Telegram: files the update names (file_id, name, size, type), fetched by the inbox
    remote_files: list[dict[str, Any]] = field(default_factory=list)
    #: attachments too large to keep: (file name, size in bytes), listed in the case text
    too_large: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Outside text is cleaned here, once, for every channel (issue #18, fault 9):
        no control character reaches the store (PostgreSQL refuses NUL) or a page, and
        no bidi override turns a name or a subject around (handlers/text.py)."""
        self.address = clean_line(self.address)
        self.text = clean(self.text)
        self.args = [clean_line(a) for a in self.args]
        self.display_name = clean_line(self.display_name)
        self.replying_to = clean(self.replying_to)
        for name in ("subject", "message_id", "callback", "command"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, clean_line(value))
        self.references = [clean_line(r) for r in self.references]
        self.too_large = [(clean_line(name), size) for name, size in self.too_large]


@dataclass
class Reply:
    """A message back to the sender, on the channel they wrote from.

    `template` names `templates/<lang>/<template>.<channel>.j2`; `case` threads an email
    reply into the case's conversation (subject tag and Message-ID bookkeeping). `vital`:
    the person must learn it took effect (an opt-out's confirmation), so it goes even past
    a paid channel's limit on answers, within a small allowance of its own
    (handlers/router.py `paid_answers`).
    """

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    case: str | None = None
    buttons: list[list[tuple[str, str]]] | None = None
    vital: bool = False


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
