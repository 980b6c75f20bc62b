"""The gateway's settings: one typed object, read once from `EMIL_*` variables and `.env`.

pydantic-settings does the parsing and validation (INTERFACES.md lists the variables).
Settings that INTERFACES.md does not name are ours and are documented in the README.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from handlers.netaddr import parse_networks

if TYPE_CHECKING:
    from mail.dkim import DkimSigner

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "xxx", "todo"}


def _valid_whsec(value: str) -> bool:
    """A Standard Webhooks secret: `whsec_` + base64 of at least 24 random bytes."""
    import base64
    import binascii

    if not value.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) >= 24
    except (binascii.Error, ValueError):
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMIL_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite://var/emilanowek.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_domain: str = "milanowek.example"
    smtp_relay: str | None = None
    sent_mail_dir: str = "var/sent-mail"
    telegram_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_mode: str = "polling"
    public_url: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_rate: float = 25.0
    #: Telegram: about one message per second to one chat
    telegram_chat_interval: float = 1.0
    #: SMS through SMSAPI.pl (sms/): unset token, no SMS channel
    sms_token: str | None = None
    sms_api_url: str = "https://api.smsapi.pl"
    #: the sender name registered with the provider: 1–11 letters and digits
    sms_sender: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,11}$")
    sms_rate: float = Field(default=10.0, gt=0)
    #: a longer text is cut to this many parts, ending with a link to the whole
    sms_max_parts: int = Field(default=3, ge=1, le=10)
    #: seconds between two SMS to one number (as EMIL_TELEGRAM_CHAT_INTERVAL for a chat):
    #: a notice and a reply to one phone arrive one after the other; 0: no spacing
    sms_number_interval: float = Field(default=1.0, ge=0)
    #: what one SMS part costs, in PLN (e.g. 0.16): the composer's estimate, and with
    #: EMIL_SMS_MONTHLY_BUDGET the month's cap in parts; unset: no estimate, no cap
    sms_part_price: Decimal | None = Field(default=None, ge=0, decimal_places=4)
    #: PLN an SMS month may cost (in the town's time zone); once spent, the rest of the
    #: month's notices go by each person's next channel and the admins are told once.
    #: Needs EMIL_SMS_PART_PRICE; unset: no cap
    sms_monthly_budget: Decimal | None = Field(default=None, ge=0, decimal_places=2)
    #: the secret path segment of the provider's callbacks (sms/callbacks.py); unset:
    #: they answer 503. At least 16 characters of letters, digits, "-" and "_"
    sms_callback_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{16,128}$")
    #: the provider's published callback sources (addresses or networks); unset: any
    sms_callback_networks: str = ""
    #: the library catalogue's SRU endpoint (gateway/sru.py); unset: /szukaj and
    #: `szukaj` to biblioteka@ say the catalogue is not connected
    catalogue_sru_url: str | None = None
    #: seconds a catalogue search may take before the reader is told it does not answer
    catalogue_timeout: float = Field(default=4.0, gt=0, le=5)
    #: a PEM bundle (a file's path) of the roots a signed document's chain must end at to
    #: be shown as trusted (handlers/signatures.py); unset: every signature is "untrusted"
    signature_trust_roots: str | None = None
    admin_token: str | None = None
    timezone: str = "Europe/Warsaw"
    smtp_max_size: int = 26_214_400
    #: the largest attachment kept with a case; larger ones are listed but not kept
    attachment_max_size: int = 10_485_760
    #: what one case keeps in attachments (handlers/quota.py): 20 files is a thick
    #: application photographed page by page; 50 MiB is five files at the largest size, or
    #: twenty phone photos, and two full mails at EMIL_SMTP_MAX_SIZE. Beyond it the files are
    #: named to the sender as not stored; the text is kept
    case_attachments_max_files: int = Field(default=20, ge=0)
    case_attachments_max_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    #: all case attachments together (10 GiB: about two years of a town office's cases at
    #: a few megabytes each, with EMIL_RETAIN_ATTACHMENT_DAYS deleting the old ones). When
    #: reached, new attachments are refused everywhere and the admins are told once
    attachments_max_total: int = Field(default=10 * 1024 ** 3, ge=0)
    #: the largest signed hook body (an end-of-term grade batch is over a megabyte)
    hook_max_bytes: int = 16 * 1024 * 1024
    #: a request body must arrive within this many seconds of its headers, plus one second
    #: for every `http_body_min_rate` bytes received (Apache mod_reqtimeout's
    #: `body=20,MinRate=500`): a client trickling a byte every 30 s is cut off with 408
    http_body_seconds: float = 20.0
    http_body_min_rate: int = 500
    #: the largest CSV file `emilanowek import` reads
    import_max_bytes: int = 64 * 1024 * 1024
    #: authserv-id of the upstream MTA whose Authentication-Results (RFC 8601) we trust
    smtp_trusted_authserv: str | None = None
    #: "dkim": verify DKIM and DMARC of inbound mail ourselves; "off": trust no mail's From
    mail_auth: str = "dkim"
    #: rate limits (per hour): anonymous case submissions per client address and per
    #: recipient address, new-case mail per sender, bot messages per chat, failed
    #: access-code look-ups per client and per case
    rate_cases_per_client: float = 20
    rate_cases_per_recipient: float = 5
    rate_mail_cases_per_sender: float = 20
    #: mail per hour per connecting host (IPv4 address, IPv6 /64; burst 30), whatever
    #: envelope senders it uses; above it RCPT answers 450 4.7.1
    rate_mail_per_peer: float = 120
    #: upstream MTAs (addresses or networks) that relay everybody's mail to us: not counted
    #: per host. The default is this host: a local MTA in front of the gateway
    smtp_trusted_peers: str = "127.0.0.1, ::1"
    rate_bot_per_chat: float = 600
    rate_code_failures_per_client: float = 20
    rate_code_failures_per_case: float = 30
    #: reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is
    #: believed for rate limits and the audit (gateway/client.py); unset: the socket's peer
    trusted_proxies: str = ""
    #: messages posted on the residents' case page per hour per client (burst 20: a
    #: case's worth of files in one sitting, one file per post); above it 429
    rate_page_posts_per_client: float = 30
    #: answers per hour to one address on a paid channel (SMS; burst min(3, this)): past
    #: it a message is still routed and stored, only its answers are dropped
    rate_paid_answers_per_address: float = Field(default=5, ge=0)
    #: days an announcement's acknowledgement link works
    ack_ttl_days: int = 30
    hook_secret_register: str | None = None
    hook_secret_library: str | None = None
    #: DKIM: the selector and the PEM private key that sign every outgoing mail
    #: (`emilanowek dkim keygen` writes the key and prints the DNS record); unset: unsigned
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    #: secret for signed links (acknowledgements); falls back to a random per-process key
    signing_secret: str | None = None
    production: bool = False

    # outbox
    outbox_lease_seconds: float = 60.0
    outbox_max_attempts: int = 8
    outbox_batch: int = 50
    outbox_poll_seconds: float = 1.0
    #: after waking for new work, the inbox and the outbox lanes wait this long so that a
    #: burst is handled as one batch (one commit, one claim) instead of one by one
    batch_linger_ms: float = 20.0
    #: PostgreSQL only: handle inbound messages, send the outbox and run the scheduler in a
    #: second process, so that taking mail and requests in and handling them use two cores
    worker_process: bool = False
    link_code_ttl_minutes: int = 60 * 24
    #: the Telegram sender's leadership lease; a dead holder's role passes on after it
    leader_ttl_seconds: float = 15.0
    #: one Telegram sender across instances (Telegram's limits are per bot); false only
    #: against a Bot API without Telegram's limits, e.g. the scale-out benchmark
    telegram_single_sender: bool = True
    #: how often the scheduler looks for announcements whose time has come
    announcement_poll_seconds: float = 60.0

    #: attendance entries of one child arriving within this many minutes become one
    #: message; 0: each batch at once
    attendance_gather_minutes: float = 10
    #: the town office's unit: its staff handle cases (INTERFACES.md)
    cases_unit: str = "urzad"
    #: a console session ends after this many minutes without a request
    panel_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: /healthz says "warn" once this many unread mails wait for a clerk (issue #18)
    unread_mail_alert: int = Field(default=5, ge=1)

    # grades
    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    digest_hour: int = 18

    # library rules (defaults follow common public-library practice; the library sets them)
    loan_period_days: int = 30
    library_grace_days: int = 14
    renew_window_days: int = 7
    overdue_hour: int = 8

    # retention: how long each kind of personal data is kept (handlers/retention.py)
    retention_days: int = 365  # raw mail and updates, sent messages and their Message-IDs
    retain_closed_case_days: int = Field(default=730, ge=1)
    retain_attachment_days: int = Field(default=365, ge=1)
    retain_loan_days: int = Field(default=90, ge=1)
    retain_conversation_days: int = Field(default=7, ge=1)
    retain_spool_days: int = Field(default=30, ge=1)
    retain_session_days: int = Field(default=30, ge=1)
    #: scheduled runs (one every 30 s for attendance); the last run of each job stays
    retain_job_run_days: int = Field(default=30, ge=1)
    #: received hooks' webhook-ids: a sender retrying a hook keeps its id and signs it
    #: anew (Stripe retries for 3 days), so the id must be remembered longer than that
    retain_hook_days: int = Field(default=7, ge=4)
    #: days after it expired that a Telegram link code (used or not) is forgotten
    retain_link_code_days: int = Field(default=30, ge=1)
    #: the school year starts on this day (MM-DD): school records of earlier years go
    school_year_start: str = Field(default="09-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")

    #: SQLite's `synchronous` pragma: FULL (default) keeps acknowledged mail through a
    #: power loss; NORMAL is faster and loses the last commits on power loss only
    sqlite_synchronous: str = "FULL"

    instance_name: str = Field(default="")

    @field_validator("telegram_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("polling", "webhook"):
            raise ValueError("EMIL_TELEGRAM_MODE must be 'polling' or 'webhook'")
        return value

    @field_validator("trusted_proxies", "smtp_trusted_peers", "sms_callback_networks")
    @classmethod
    def _networks(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse_networks(value)
        except ValueError as error:
            raise ValueError(f"EMIL_{str(info.field_name).upper()}: {error}") from None
        return value

    @field_validator("sqlite_synchronous")
    @classmethod
    def _synchronous(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("EMIL_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
        return value

    @field_validator("mail_auth")
    @classmethod
    def _mail_auth(cls, value: str) -> str:
        if value not in ("dkim", "off"):
            raise ValueError("EMIL_MAIL_AUTH must be 'dkim' or 'off'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"EMIL_TIMEZONE: unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _worker_process(self) -> Settings:
        from store.db import is_postgres

        if self.worker_process and not is_postgres(self.database_url):
            raise ValueError("EMIL_WORKER_PROCESS needs PostgreSQL (EMIL_DATABASE_URL): SQLite "
                             "has one writer, and two processes would wait on each other")
        return self

    @model_validator(mode="after")
    def _dkim(self) -> Settings:
        if bool(self.dkim_selector) != bool(self.dkim_key_file):
            raise ValueError("EMIL_DKIM_SELECTOR and EMIL_DKIM_KEY_FILE go together: set both "
                             "to sign outgoing mail, or neither")
        if self.dkim_selector:
            self.mail_signer()  # an unreadable key stops the start, not every mail after it
        return self

    @model_validator(mode="after")
    def _sms_budget(self) -> Settings:
        if self.sms_monthly_budget is not None and not self.sms_part_price:
            raise ValueError("EMIL_SMS_MONTHLY_BUDGET needs EMIL_SMS_PART_PRICE (above 0): the "
                             "budget is kept in parts, and a part's price turns PLN into parts")
        return self

    @property
    def sms_budget_parts(self) -> int | None:
        """The month's cap in SMS parts (the budget over the price, rounded down), or None."""
        if self.sms_monthly_budget is None or not self.sms_part_price:
            return None
        return int(self.sms_monthly_budget // self.sms_part_price)

    def mail_signer(self) -> DkimSigner | None:
        """The DKIM signer of outgoing mail, or None when signing is not configured."""
        from mail.dkim import load_signer

        if not (self.dkim_selector and self.dkim_key_file):
            return None
        return load_signer(self.dkim_selector, self.dkim_key_file, self.mail_domain)

    def signature_roots_pem(self) -> bytes | None:
        """The trust roots' PEM bundle, read once at start-up (a missing file stops the
        start: a typo must not quietly turn every signature "untrusted")."""
        if not self.signature_trust_roots:
            return None
        from pathlib import Path

        return Path(self.signature_trust_roots).read_bytes()

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if self.telegram_token and self.telegram_mode == "webhook":
            if not self.telegram_webhook_secret:
                raise ValueError("EMIL_TELEGRAM_WEBHOOK_SECRET is required in webhook mode")
        for name in ("hook_secret_register", "hook_secret_library"):
            value = getattr(self, name)
            if value and not _valid_whsec(value):
                raise ValueError(f"EMIL_{name.upper()} must be 'whsec_' followed by base64 of "
                                 "at least 24 bytes (Standard Webhooks)")
        if self.production:
            if not self.smtp_relay:
                raise ValueError("EMIL_SMTP_RELAY is required in production: without it mail "
                                 "is only written under var/sent-mail and never leaves")
            for name in ("admin_token", "signing_secret", "telegram_webhook_secret",
                         "sms_callback_secret"):
                value = getattr(self, name)
                if value is not None and value.strip().lower() in _PLACEHOLDERS:
                    raise ValueError(f"EMIL_{name.upper()} is a placeholder; set a real secret")
                if value is not None and len(value) < 32:
                    raise ValueError(f"EMIL_{name.upper()} is shorter than 32 characters")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def address(self, mailbox: str) -> str:
        return f"{mailbox}@{self.mail_domain}"

    def today(self, now_utc: datetime) -> date:
        return now_utc.astimezone(self.zone).date()
