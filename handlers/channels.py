"""One channel shape, registered once (issue #19).

A channel — email, Telegram, and whatever comes next — is one :class:`Channel`: how it
reads its stored raw input, proves a sender, normalises an address, renders and packs a
message, and which lane sends it. The channel packages build theirs (`mail/channel.py`,
`bots/channel.py`) and `gateway/app.py` registers them, explicitly, in one place; this
module imports none of them (handlers/ may not import gateway/, bots/ or mail/).

Everything between intake and sending reads the :class:`Channels` registry on the
service context — the inbox's readers, the proof of a sender, the dispatcher's lanes, the
list of channels a person may name in their order, and the fan-out's default order (the
order of registration) — instead of asking `if channel == "email"`.

Proof is closed by default: a channel without `prove` proves nothing, and an unproven
sender on a channel that is not routed by mailbox is answered as a stranger (see
handlers/router.py). Model: GOV.UK Notify's one client class per channel behind one
interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from handlers.message import InboundMessage, Reply

if TYPE_CHECKING:
    from handlers.context import ServiceContext
    from handlers.render import Renderer
    from store.models import Outbox, Person, RawInbound

__all__ = ["Channel", "Channels", "Command", "Envelope", "HookEnv", "Outgoing", "Sender",
           "text_payload"]

#: a channel's own command: (context, message, person or None) → the replies, like a
#: handlers/router.py route's handler
Command = Callable[["ServiceContext", InboundMessage, "Person | None"], Awaitable[list[Reply]]]


class Sender(Protocol):
    """Sends one outbox row, raising store/outbox's error classes: `RateLimited`
    (pause the lane), `PermanentSendError` (fall back), `TransientSendError` (retry)."""

    channel: str

    async def send(self, row: Outbox) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    """A lane's sender and pacing (gateway/dispatcher.py builds the lane).

    Attributes:
        sender: what sends a row.
        rate: messages per second for the whole channel (None: unpaced).
        chat_interval: seconds between two messages to one address (None: no spacing).
    """

    sender: Sender
    rate: float | None = None
    chat_interval: float | None = None


@dataclass(frozen=True)
class Envelope:
    """What a payload may carry besides the rendered text: mail threads it, a chat
    shows buttons; each channel takes what it can use."""

    mailbox: str = "sprawy"
    case: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    #: the subject being answered (a reply whose template has none says "Re: …")
    answering: str | None = None
    buttons: list[Any] | None = None
    #: the notice's own way out for this person, type and channel (RFC 8058 in mail:
    #: `{"unsubscribe": url, "id": list id}`); None for answers about their own case
    unsubscribe: dict[str, str] | None = None
    #: the person asked for text "bez polskich znaków" (`Person.plain_letters`): a channel
    #: that pays per character set (SMS) writes it without Polish diacritics
    plain_letters: bool = False


@dataclass(frozen=True)
class HookEnv:
    """What the gateway lends a channel's own HTTP callbacks (a provider's delivery
    reports and incoming messages). handlers/ knows no aiohttp, so the request is `Any`
    here; the channel package that writes the callbacks does know it.

    Attributes:
        services: the service context (built at start-up, after the routes are mounted).
        wake_inbox: a raw row was stored: the inbox should look now, not at its next poll.
        wake_outbox: rows were queued (a fallback after a bounce): the lanes should look.
        client_address: request → the client's address as the gateway decides it
            (behind trusted proxies, `X-Forwarded-For`; gateway/client.py).
        max_bytes: the largest body a callback may read (the hooks' limit).
    """

    services: Callable[[], ServiceContext]
    wake_inbox: Callable[[], None]
    wake_outbox: Callable[[], None]
    client_address: Callable[[Any], str]
    max_bytes: int


def text_payload(ctx: ServiceContext, rendered: dict[str, str], envelope: Envelope
                 ) -> dict[str, Any]:
    """The payload of a channel that sends text (and buttons, where it has them)."""
    payload: dict[str, Any] = {"text": rendered["text"]}
    if envelope.buttons:
        payload["buttons"] = envelope.buttons
    return payload


def _given(address: str) -> str | None:
    """An address as given, if there is one (a channel with no rule of its own)."""
    address = address.strip()
    return address or None


@dataclass(frozen=True)
class Channel:
    """One channel, as the rest of the gateway sees it.

    Attributes:
        name: stored in every row (identities, raw input, outbox); up to 16 characters.
        read: a stored raw row → the message, or None and why it gets no answer
            (the inbox runs it; it may raise for input nobody can read).
        outgoing: the lane's sender and pacing, or None while the channel cannot send
            (Telegram without a token).
        templates: the template suffixes tried in order, `<name>.<suffix>.j2`: the
            channel's own first, then its documented fallback (a shorter form).
        render: (renderer, template, language, context) → rendered parts; None renders
            plain text from `templates`.
        payload: rendered parts → the outbox payload.
        normalise: an address as typed → the stored form, or None if it is not one.
        prove: how the sender of a message is proven (a word for `msg.proof`) or None;
            a channel without it proves nothing (closed by default).
        glance: what can still be read of a row `read` failed on, or whose handling
            failed for good (a `handlers.unread.Glance`); with it, such rows are set aside
            for a clerk and their senders answered on this channel. Every channel of the
            town has one (tests/test_unread_chats.py): without it the inbox can only
            apologise, and the message waits where no person looks.
        raw_file: (extension, content type) of a stored raw row as a file — the original
            a clerk downloads from the unread queue and keeps with a case.
        slow: `read` parses large input or waits on DNS: the inbox runs it in a thread.
        fetch: fetches the files a message only names (inside the inbox, before the
            batch's transaction).
        mailboxes: messages are addressed to a service mailbox (handlers/router.py's
            MAILBOXES), whose handlers ask for proof before they change anything;
            otherwise they are commands and dialogues, and an unproven sender is a
            stranger.
        opt_out_link: each message carries its own way out (mail's RFC 8058
            `List-Unsubscribe`): the fan-out signs one per person, type and channel —
            only for the channels that use it (20,000 signatures cost a broadcast 10 %).
        callbacks: the channel's own HTTP callbacks — a provider's delivery reports and
            incoming messages: given a :class:`HookEnv`, aiohttp route definitions
            (`web.get(path, handler)`) whose paths are relative to `/hooks/<name>`;
            gateway/app.py mounts those of every registered channel, and the OpenAPI
            document describes each by its handler's docstring. None: no callbacks.
        commands: the channel's own commands by word (SMS `stop`, `start`), asked by
            handlers/router.py before the general routes — so a word can mean on one
            channel what the channel needs (SMS `STOP` is an opt-out, Telegram `/stop`
            unlinks the chat). Empty: the general routes only.
        revived_by_message: a message from an address shows it reaches its person again,
            so a failing mark on it is lifted when one arrives (handlers/health.py): a
            Telegram chat that writes to the bot has unblocked it. Off by default: mail
            can come from a mailbox that takes none, so its mark stays until the address
            is set again.
        paid: each message costs money (SMS): the fan-out uses the channel for a notice
            only where the person put it in their own channel order, as an urgent
            notice's last fallback, or for someone with no other channel that works
            (handlers/fanout.py `paid_last`); answers go back where a message came from,
            at most `Limits.paid_answers_per_address` to one address (every message is
            still routed: handlers/router.py `paid_answers`).
        threaded: a message's `message_id` is what this channel's replies answer (mail's
            Message-ID, RFC 5322 In-Reply-To): a case keeps the resident's so a clerk's
            reply is threaded to it; a chat's message ids mean nothing to another channel.
        cases_by_text: plain text on this channel is a case, as mail to `sprawy@` is —
            SMS, whose messages are not commands by nature and where a person who texts
            the town must reach a person: text that is neither a command nor part of a
            dialogue adds to the case our last message to that address was about, within
            `handlers.cases.FOLLOW_UP` (14 days), and otherwise opens a case, answered
            with its number (handlers/router.py, handlers/cases.handle_text).
        raw_senders: (raw row, partial) → the addresses that sent a stored raw row, as
            identities store them (RODO's export and erasure find a person's raw input
            with it, handlers/rodo.py); None: the channel keeps no raw input of people.
            With `raw_head`, the row's payload is only its first `raw_head` bytes
            (`partial` True when that cut something off), and the function may answer
            None to be called again with the whole payload.
        raw_head: how many bytes of a raw payload `raw_senders` needs (a mail's header,
            not its attachments); 0: all of it.
        estimate: what an announcement would cost on this channel before it is sent
            (a paid channel's block in the console's composer): `(ctx, people, sample
            announcement, urgent=, lang=, next_id=)` → the figures its composer block
            shows (templates/pages/panel/announcements.html.j2, `preview.costs[name]`).
    """

    name: str
    read: Callable[[RawInbound, ServiceContext], tuple[InboundMessage | None, str]]
    outgoing: Callable[[], Outgoing | None]
    templates: tuple[str, ...] = ()
    render: Callable[[Renderer, str, str, dict[str, Any]], dict[str, str]] | None = None
    payload: Callable[[ServiceContext, dict[str, str], Envelope], dict[str, Any]] = text_payload
    normalise: Callable[[str], str | None] = _given
    prove: Callable[[InboundMessage], Awaitable[str | None]] | None = None
    glance: Callable[[RawInbound, ServiceContext], Any] | None = None
    raw_file: tuple[str, str] = ("bin", "application/octet-stream")
    slow: bool = False
    fetch: Callable[[InboundMessage, int], Awaitable[None]] | None = None
    mailboxes: bool = False
    opt_out_link: bool = False
    callbacks: Callable[[HookEnv], list[Any]] | None = None
    commands: Mapping[str, Command] = field(default_factory=lambda: MappingProxyType({}))
    revived_by_message: bool = False
    paid: bool = False
    threaded: bool = False
    cases_by_text: bool = False
    raw_senders: Callable[[RawInbound, bool], set[str] | None] | None = None
    raw_head: int = 0
    estimate: Callable[..., Awaitable[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= 16:  # the `channel` columns are 16 characters
            raise ValueError(f"a channel's name has 1–16 characters: {self.name!r}")
        if self.render is None and not self.templates:
            raise ValueError(f"channel {self.name!r} renders nothing: give templates or render")

    def rendered(self, renderer: Renderer, template: str, lang: str,
                 context: dict[str, Any]) -> dict[str, str]:
        """`template` rendered for this channel."""
        if self.render is not None:
            return self.render(renderer, template, lang, context)
        return renderer.text(template, self.templates, lang, context)


class Channels:
    """The registry: channels by name, in the order registered — which is also the
    order a person is reached in when they have not chosen one."""

    def __init__(self, channels: Iterable[Channel] = ()) -> None:
        self._by_name: dict[str, Channel] = {}
        for channel in channels:
            self.register(channel)

    def register(self, channel: Channel) -> None:
        """Add a channel; a name is registered once."""
        if channel.name in self._by_name:
            raise ValueError(f"channel {channel.name!r} is registered already")
        self._by_name[channel.name] = channel

    def __getitem__(self, name: str) -> Channel:
        return self._by_name[name]

    def get(self, name: str) -> Channel | None:
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Channel]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """The one list of channels, in the default order."""
        return tuple(self._by_name)

    async def prove(self, msg: InboundMessage) -> None:
        """Fill `msg.proof` from the message's channel; unproven unless it proves it.
        A proof the reader already found (mail's DMARC pass) stands."""
        if msg.proof:
            return
        channel = self._by_name.get(msg.channel)
        if channel is not None and channel.prove is not None:
            msg.proof = await channel.prove(msg)
