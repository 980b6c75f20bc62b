"""What every handler gets besides the message: time, rendering and the town's rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handlers.channels import Channels
from handlers.render import Renderer
from store.clock import Clock


@dataclass
class LibraryRules:
    loan_period_days: int = 30
    grace_days: int = 14
    renew_window_days: int = 7


@dataclass
class AttachmentLimits:
    """What a case and the whole store keep in attachments (handlers/quota.py decides);
    the per-file limit is `ServiceContext.attachment_max_size`."""

    case_files: int = 20
    case_bytes: int = 50 * 1024 * 1024
    store_bytes: int = 10 * 1024 ** 3


@dataclass
class ServiceContext:
    clock: Clock
    renderer: Renderer
    zone: ZoneInfo
    mail_domain: str
    base_url: str
    bot_username: str | None = None
    link_code_ttl: timedelta = timedelta(days=1)
    attachment_max_size: int = 10 * 1024 * 1024
    attachments: AttachmentLimits = field(default_factory=AttachmentLimits)
    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    digest_hour: int = 18
    library: LibraryRules = field(default_factory=LibraryRules)
    signing_secret: str = ""
    #: how inbound mail is authenticated (mail/authenticate.MailAuth); None: not at all
    mail_auth: Any = None
    #: key of the access codes' keyed hash (store-kept, see store/secrets.py)
    code_key: bytes = b""
    #: how long an acknowledgement link works
    ack_ttl: timedelta = timedelta(days=30)
    retention_days: int = 365
    #: each other kind's period (handlers/retention.Retention)
    retention: Any = None
    #: attendance entries of one child within this window become one message
    attendance_gather: timedelta = timedelta(minutes=10)
    #: rate limits of this process (handlers/ratelimit.Limits)
    limits: Any = None
    #: the unit whose staff handle residents' cases (EMIL_CASES_UNIT; handlers/cases.may_act)
    cases_unit: str = "urzad"
    #: the registered channels (handlers/channels.py), in the default order
    channels: Channels = field(default_factory=Channels)
    #: the library catalogue's client (handlers/catalogue.Catalogue; gateway/sru.py), or
    #: None: EMIL_CATALOGUE_SRU_URL is unset and the catalogue commands say so
    catalogue: Any = None
    #: how long a catalogue search may take before the reader is told it does not answer
    catalogue_timeout: float = 4.0

    def address(self, mailbox: str) -> str:
        return f"{mailbox}@{self.mail_domain}"
