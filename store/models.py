"""Tortoise models: everything the gateway remembers.

No semicolons in model docstrings: Tortoise 1.1 puts them in table comments and splits
its SQLite DDL on ";".

Stored times are UTC. Identifiers that come from other systems (the school register's
grade and student ids, the library's loan ids, Telegram's update ids, webhook ids) are
kept verbatim under unique constraints, which is what makes re-imports and replayed
hooks change nothing.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

ROLES = ("citizen", "parent", "student", "staff", "librarian", "admin")
CASE_STATUSES = ("received", "in_progress", "waiting", "resolved", "rejected")


class Person(Model):
    """A resident, parent, reader or staff member, reachable on one or more channels."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    roles: fields.JSONField[list[str]] = fields.JSONField(default=list)
    units: fields.JSONField[list[str]] = fields.JSONField(default=list)
    language = fields.CharField(max_length=5, default="pl")
    #: a pupil's own account (role `student`, issue #20): the register's id of the one
    #: Student this person is — they see that pupil's data and nobody else's
    student_id = fields.CharField(max_length=64, null=True, db_index=True)
    #: "bez polskich znaków": text to this person on a paid channel (SMS) has its Polish
    #: letters transliterated, so a part holds 160 characters instead of 70 (issue #19)
    plain_letters = fields.BooleanField(default=False)
    library_card = fields.CharField(max_length=64, null=True, unique=True)
    library_blocked = fields.BooleanField(default=False)
    #: channel order to try for notifications, e.g. ["telegram", "email"]
    channel_order: fields.JSONField[list[str]] = fields.JSONField(default=list)
    #: "instant" or "daily" for grade notices
    digest_mode = fields.CharField(max_length=10, default="instant")
    digest_hour = fields.SmallIntField(default=18)
    quiet_start = fields.CharField(max_length=5, default="22:00")
    quiet_end = fields.CharField(max_length=5, default="07:00")
    last_channel = fields.CharField(max_length=16, null=True)
    #: per notice type: instant, digest or off (absent: instant, and grades also follow
    #: `digest_mode`)
    #: (nullable: added to a table that has rows)
    notices: fields.JSONField[dict[str, str] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    identities: fields.ReverseRelation[Identity]

    class Meta:
        table = "person"


class Identity(Model):
    """An address on one channel: an email address or a Telegram chat id."""

    id = fields.IntField(primary_key=True)
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="identities", on_delete=fields.CASCADE
    )
    person_id: int  # the column Tortoise adds for it, declared for mypy
    channel = fields.CharField(max_length=16)
    address = fields.CharField(max_length=320)
    created_at = fields.DatetimeField(auto_now_add=True)
    #: mail to this address bounced for good (handlers/bounces.py): notices skip it for
    #: the person's next channel until it is set again
    failing_since = fields.DatetimeField(null=True)
    failing_reason = fields.CharField(max_length=200, null=True)
    #: times (ISO) of recent soft bounces; enough of them close together count as hard
    soft_bounces: fields.JSONField[list[str] | None] = fields.JSONField(null=True)

    class Meta:
        table = "identity"
        unique_together = (("channel", "address"),)


class LinkCode(Model):
    """A one-time code that links a Telegram chat to a person (`/start CODE`)."""

    code = fields.CharField(max_length=64, primary_key=True)
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="link_codes", on_delete=fields.CASCADE
    )
    person_id: int  # the column Tortoise adds for it, declared for mypy
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "link_code"


class ApiKey(Model):
    """A scoped bearer key: only its SHA-256 is kept."""

    id = fields.IntField(primary_key=True)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    label = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked = fields.BooleanField(default=False)

    class Meta:
        table = "api_key"


class Counter(Model):
    """Named counters: case numbers take `UPDATE … value = value + n` under a row lock."""

    name = fields.CharField(max_length=64, primary_key=True)
    value = fields.BigIntField(default=0)

    class Meta:
        table = "counter"


class Case(Model):
    """A resident's case at the town office, numbered `UM-YYYY-NNNNNN`."""

    number = fields.CharField(max_length=16, primary_key=True)
    subject = fields.CharField(max_length=300)
    body = fields.TextField()
    category = fields.CharField(max_length=64, null=True)
    status = fields.CharField(max_length=16, default="received")
    access_code_hash = fields.CharField(max_length=64)
    person: fields.ForeignKeyNullableRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="cases", null=True, on_delete=fields.SET_NULL
    )
    person_id: int | None  # the column Tortoise adds for it, declared for mypy
    # where the requester is reached: `CaseContact` rows, one per channel
    origin_channel = fields.CharField(max_length=16)
    last_channel = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    assignee_id = fields.IntField(null=True, db_index=True,
                                  description="the clerk the case is assigned to, if any")

    class Meta:
        table = "case"
        indexes = (("status", "updated_at"), ("updated_at",))


class CaseContact(Model):
    """Where a case's requester is reached on one channel: the address the case came
    from, or a follow-up came from, on that channel (issue #19; it replaces the columns
    `requester_email` and `requester_chat`, which knew two channels).

    A table, not a pair of columns `requester_channel`/`requester_address`: a resident
    who wrote by mail and then by Telegram is reached on both, and one pair would keep
    only one. One address per case and channel (the first stays, as it did); indexed by
    (channel, address) because RODO and "the cases of this address" look up by address."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="contacts", on_delete=fields.CASCADE
    )
    case_id: str  # the column Tortoise adds for it, declared for mypy
    channel = fields.CharField(max_length=16)
    address = fields.CharField(max_length=320)

    class Meta:
        table = "case_contact"
        unique_together = (("case_id", "channel"),)
        indexes = (("channel", "address"),)


class CaseEvent(Model):
    """One entry of a case's history, only `public` ones are shown to the requester."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="events", on_delete=fields.CASCADE
    )
    case_id: str  # the column Tortoise adds for it, declared for mypy
    kind = fields.CharField(max_length=16)  # created | status | note | message
    status = fields.CharField(max_length=16, null=True)
    text = fields.TextField(default="")
    public = fields.BooleanField(default=True)
    channel = fields.CharField(max_length=16, null=True)
    created_at = fields.DatetimeField()
    #: the resident's mail's Message-ID (a clerk's reply answers it, threaded)
    message_id = fields.CharField(max_length=255, null=True)
    #: the clerk who wrote a note or reply
    author_id = fields.IntField(null=True)

    class Meta:
        table = "case_event"
        # a case's thread, in order (the console reads it for every case page)
        indexes = (("case_id", "created_at"),)


class Attachment(Model):
    """A file that came with a case message (kept, size-limited)."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="attachments", on_delete=fields.CASCADE
    )
    case_id: str  # the column Tortoise adds for it, declared for mypy
    filename = fields.CharField(max_length=255)
    content_type = fields.CharField(max_length=127)
    size = fields.IntField()
    data = fields.BinaryField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "attachment"
        #: a case's files and bytes, and the store's, counted from the index alone
        #: (handlers/quota.py): the rows hold the blobs
        indexes = (("case_id", "size"),)


class MailThread(Model):
    """Message-IDs of the mail we sent about a case, so a plain reply finds its case."""

    message_id = fields.CharField(max_length=255, primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="mail_threads", on_delete=fields.CASCADE
    )
    case_id: str  # the column Tortoise adds for it, declared for mypy

    class Meta:
        table = "mail_thread"


class RawInbound(Model):
    """An inbound email or Telegram update, stored verbatim before it is acknowledged.

    `status`: pending, then done, ignored (automatic mail), failed, or unread: mail that
    could not be turned into a case, waiting for a clerk in the console (gateway/
    panel_unread.py), and handled once a clerk opened a case from it or set it aside.
    """

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    external_id = fields.CharField(max_length=128)
    envelope: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    payload = fields.BinaryField()
    status = fields.CharField(max_length=12, default="pending", db_index=True)
    note = fields.TextField(default="")
    received_at = fields.DatetimeField()
    processed_at = fields.DatetimeField(null=True)
    #: unread mail: what could be read of it (sender, subject, size, why, whether it was
    #: answered), written when it was set aside, so the queue never reads the payloads
    summary: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    handled_at = fields.DatetimeField(null=True)
    handled_by_id = fields.IntField(null=True)
    #: the case a clerk opened from unread mail
    case_number = fields.CharField(max_length=20, null=True)

    class Meta:
        table = "raw_inbound"
        unique_together = (("channel", "external_id"),)


class Conversation(Model):
    """Where a multi-step dialogue (e.g. `/sprawa`) stands for one chat or address."""

    key = fields.CharField(max_length=200, primary_key=True)
    kind = fields.CharField(max_length=32)
    step = fields.CharField(max_length=32)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "conversation"


class Outbox(Model):
    """A message waiting to leave (or that left): the one door out of the gateway."""

    id = fields.BigIntField(primary_key=True)
    idempotency_key = fields.CharField(max_length=200, unique=True)
    channel = fields.CharField(max_length=16)
    recipient = fields.CharField(max_length=320)
    person_id = fields.IntField(null=True)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField()
    #: further (channel, recipient, payload) to try when this one fails for good
    fallbacks: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    #: 0 = reply to a person's own message, 5 = notification, 9 = bulk broadcast
    priority = fields.SmallIntField(default=5)
    status = fields.CharField(max_length=10, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    last_error = fields.TextField(default="")
    cause = fields.CharField(max_length=100, default="", db_index=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    #: when the channel reported it delivered (status `delivered`; an SMS delivery report)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox"
        #: the second: the last message to an address (the console's person page)
        indexes = (("status", "channel", "priority", "next_attempt_at"),
                   ("channel", "recipient", "id"))


class HookDelivery(Model):
    """A received integration hook, by its `webhook-id`, with the answer we gave."""

    webhook_id = fields.CharField(max_length=200, primary_key=True)
    source = fields.CharField(max_length=32)
    response: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    received_at = fields.DatetimeField()

    class Meta:
        table = "hook_delivery"


class JobRun(Model):
    """One scheduled run: the unique (job, due) pair makes a daily job run once overall."""

    id = fields.IntField(primary_key=True)
    job = fields.CharField(max_length=64)
    due = fields.CharField(max_length=64)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    summary: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "job_run"
        unique_together = (("job", "due"),)


# --- school register (grade notifications) -------------------------------------------


class Student(Model):
    """A pupil, under the school register's own id."""

    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    class_name = fields.CharField(max_length=32, default="")
    guardians: fields.ManyToManyRelation[Person] = fields.ManyToManyField(
        "models.Person", related_name="children", through="student_guardian"
    )

    class Meta:
        table = "student"


class Grade(Model):
    """A grade (or remark) from the register: re-sent ids update, never duplicate."""

    id = fields.CharField(max_length=64, primary_key=True)
    student: fields.ForeignKeyRelation[Student] = fields.ForeignKeyField(
        "models.Student", related_name="grades", on_delete=fields.CASCADE
    )
    student_id: str  # the column Tortoise adds for it, declared for mypy
    subject = fields.CharField(max_length=100)
    value = fields.CharField(max_length=32)
    weight = fields.CharField(max_length=16, null=True)
    category = fields.CharField(max_length=100, null=True)
    recorded_at = fields.DatetimeField()
    revision = fields.IntField(default=1)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "grade"


class GradeNotice(Model):
    """A grade waiting for a guardian's daily digest."""

    id = fields.BigIntField(primary_key=True)
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="grade_notices", on_delete=fields.CASCADE
    )
    person_id: int  # the column Tortoise adds for it, declared for mypy
    student_id = fields.CharField(max_length=64)
    grade_id = fields.CharField(max_length=64)
    correction = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "grade_notice"
        indexes = (("person_id", "sent_at"),)


# --- library ---------------------------------------------------------------------------


class Loan(Model):
    """A loan as the library system last described it."""

    id = fields.CharField(max_length=64, primary_key=True)
    card = fields.CharField(max_length=64, db_index=True)
    title = fields.CharField(max_length=300)
    due = fields.DateField()
    renewals = fields.IntField(default=0)
    max_renewals = fields.IntField(default=2)
    reserved = fields.BooleanField(default=False)
    returned = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "loan"


class LoanReminder(Model):
    """A reminder level sent for a loan: unique, so each level goes out once."""

    id = fields.BigIntField(primary_key=True)
    loan: fields.ForeignKeyRelation[Loan] = fields.ForeignKeyField(
        "models.Loan", related_name="reminders", on_delete=fields.CASCADE
    )
    loan_id: str  # the column Tortoise adds for it, declared for mypy
    #: "<level>@<due date>": due-soon, overdue-1, overdue-7, overdue-14 for that due date
    level = fields.CharField(max_length=40)
    card = fields.CharField(max_length=64)
    reachable = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "loan_reminder"
        unique_together = (("loan_id", "level"),)


class Renewal(Model):
    """A renewal we granted, for the library system to read back."""

    id = fields.BigIntField(primary_key=True)
    loan_id = fields.CharField(max_length=64)
    card = fields.CharField(max_length=64)
    old_due = fields.DateField()
    new_due = fields.DateField()
    channel = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "renewal"


# --- intranet announcements ------------------------------------------------------------


class Announcement(Model):
    """A notice from staff to units and roles, tracked to acknowledgement."""

    id = fields.IntField(primary_key=True)
    author: fields.ForeignKeyNullableRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="announcements", null=True, on_delete=fields.SET_NULL
    )
    author_id: int | None  # the column Tortoise adds for it, declared for mypy
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    audience: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    priority = fields.CharField(max_length=10, default="normal")
    #: pending (awaiting the author's confirmation) | scheduled | published | cancelled | retracted
    status = fields.CharField(max_length=12, default="scheduled")
    source = fields.CharField(max_length=16, default="api")
    confirm_token = fields.CharField(max_length=64, null=True, unique=True)
    publish_at = fields.DatetimeField(null=True)
    attachment: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    published_at = fields.DatetimeField(null=True)
    retracted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "announcement"


class AnnouncementDelivery(Model):
    """One recipient of an announcement, and whether they acknowledged it."""

    id = fields.BigIntField(primary_key=True)
    announcement: fields.ForeignKeyRelation[Announcement] = fields.ForeignKeyField(
        "models.Announcement", related_name="deliveries", on_delete=fields.CASCADE
    )
    announcement_id: int  # the column Tortoise adds for it, declared for mypy
    person_id = fields.IntField()
    ack_token = fields.CharField(max_length=64, unique=True)
    acked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "announcement_delivery"
        unique_together = (("announcement_id", "person_id"),)


class Leadership(Model):
    """Who holds a cluster-wide role (the Telegram sender and poller) and until when."""

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=64)
    until = fields.DatetimeField()

    class Meta:
        table = "leadership"


class SentMail(Model):
    """Every Message-ID we sent, and to whom: a reply threaded to one of them proves the
    replier reads that mailbox (issue #11: identity is proven, not read from a header)."""

    message_id = fields.CharField(max_length=255, primary_key=True)
    recipient = fields.CharField(max_length=320)
    created_at = fields.DatetimeField()

    class Meta:
        table = "sent_mail"


class StoredSecret(Model):
    """A secret the gateway generated once and keeps, so that every process and instance
    signs and checks with the same one (acknowledgement links, access-code hashes)."""

    name = fields.CharField(max_length=64, primary_key=True)
    value = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()

    class Meta:
        table = "stored_secret"


class IdempotentRequest(Model):
    """The answer to a request sent with an `Idempotency-Key`: the same key within 24 h
    gets the same answer (a client retrying after a lost answer opens one case)."""

    key = fields.CharField(max_length=255, primary_key=True)
    response: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotent_request"


# --- the school register beyond grades (issue #12) -----------------------------------------


class Attendance(Model):
    """The attendance entry of a student for one lesson, as the register last described it."""

    id = fields.CharField(max_length=64, primary_key=True)
    student_id = fields.CharField(max_length=64, db_index=True)
    date = fields.DateField()
    period = fields.SmallIntField()
    status = fields.CharField(max_length=10)  # absent | late | excused | present
    subject = fields.CharField(max_length=100, null=True)
    #: the status guardians were last told (None: not yet), and an excused absence that was
    #: announced as absent is announced again as a correction
    announced_status = fields.CharField(max_length=10, null=True)
    #: the gathering batch that will announce it (EMIL_ATTENDANCE_GATHER_MINUTES)
    batch_id = fields.BigIntField(null=True, db_index=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "attendance"


class AttendanceBatch(Model):
    """Entries of one child arriving close together, told to guardians as one message
    when `due_at` comes."""

    id = fields.BigIntField(primary_key=True)
    student_id = fields.CharField(max_length=64)
    due_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "attendance_batch"
        indexes = (("sent_at", "due_at"), ("student_id", "sent_at"))


class Remark(Model):
    """A remark of a teacher (uwaga): positive, negative or neutral."""

    id = fields.CharField(max_length=64, primary_key=True)
    student_id = fields.CharField(max_length=64, db_index=True)
    kind = fields.CharField(max_length=10)
    text = fields.CharField(max_length=2000)
    teacher = fields.CharField(max_length=200)
    recorded_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "remark"


class Homework(Model):
    """Homework, a test (sprawdzian) or a quiz (kartkówka) for a class."""

    id = fields.CharField(max_length=64, primary_key=True)
    class_name = fields.CharField(max_length=32, db_index=True)
    subject = fields.CharField(max_length=100)
    kind = fields.CharField(max_length=10)  # homework | test | quiz
    title = fields.CharField(max_length=300)
    due = fields.DateField()
    description = fields.TextField(default="")
    updated_at = fields.DatetimeField()

    class Meta:
        table = "homework"


class SchoolMessage(Model):
    """A message from the school to the guardians of a class or of one student."""

    id = fields.CharField(max_length=64, primary_key=True)
    class_name = fields.CharField(max_length=32, null=True)
    student_id = fields.CharField(max_length=64, null=True)
    title = fields.CharField(max_length=300)
    body = fields.TextField()
    sender = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()

    class Meta:
        table = "school_message"


class DigestItem(Model):
    """A school notice waiting for the daily digest of a guardian (preference: digest)."""

    id = fields.BigIntField(primary_key=True)
    person_id = fields.IntField()
    kind = fields.CharField(max_length=16)
    key = fields.CharField(max_length=200)
    lines: fields.JSONField[list[str]] = fields.JSONField(default=list)  # rendered lines, in the person's language
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "digest_item"
        unique_together = (("person_id", "key"),)
        indexes = (("person_id", "sent_at"),)


class SignInLink(Model):
    """A one-time console sign-in link: single use, short-lived, and good only in a
    browser that asked for a link for the same person while it is valid (see
    SignInRequest). `browser_hash` is the cookie hash of the request it was mailed for."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    person_id = fields.IntField()
    browser_hash = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sign_in_link"


class SignInRequest(Model):
    """A console sign-in form as posted: stored before the page answers, handled after
    it by the sign-in worker (handlers/staff.py), so the answer takes the same time for
    any address. Once handled, a staff member's row keeps only who asked in which browser
    (the email is cleared) for as long as a link lives, and anyone else's row is deleted."""

    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=320, default="")
    browser_hash = fields.CharField(max_length=64)
    #: the console page to go back to after signing in (a /panel/ path)
    dalej = fields.CharField(max_length=500, default="/panel/")
    requested_at = fields.DatetimeField()
    person_id = fields.IntField(null=True)
    handled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sign_in_request"
        indexes = (("handled_at", "id"), ("person_id", "browser_hash"))


class StaffSession(Model):
    """A signed-in console browser. Only the hash of the cookie is kept."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    person_id = fields.IntField(db_index=True)
    csrf = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_session"


class AuditEntry(Model):
    """Who did what to which object, when and from where: appended, never changed (the
    database refuses UPDATE and DELETE on it, store/migrations/0005_console.py)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=200)
    person_id = fields.IntField(null=True, db_index=True)
    source = fields.CharField(max_length=16)
    action = fields.CharField(max_length=64)
    object = fields.CharField(max_length=100, db_index=True)
    address = fields.CharField(max_length=64, default="")
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit"


class OptOut(Model):
    """An address that asked for nothing more on its channel (an SMS `STOP`, issue #19):
    the channel's sender refuses it (on to the person's next channel) until `START`.
    Kept by address, not person: a number nobody linked may say STOP too."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    address = fields.CharField(max_length=320)
    since = fields.DatetimeField()

    class Meta:
        table = "opt_out"
        unique_together = (("channel", "address"),)


class ChannelSpend(Model):
    """What a paid channel has spent in one month, in its own units (SMS parts): reserved
    by one conditional UPDATE before a send, so instances together keep to the budget."""

    id = fields.IntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    #: "YYYY-MM" in the town's time zone
    month = fields.CharField(max_length=7)
    units = fields.IntField(default=0)
    #: when the admins were told this month's budget is spent (once a month)
    exhausted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "channel_spend"
        unique_together = (("channel", "month"),)


class AddressClaim(Model):
    """A person's claim to an address on a channel (a phone), proven by a one-time code
    sent to that address and typed back where they asked: only the code's hash is kept."""

    id = fields.BigIntField(primary_key=True)
    person_id = fields.IntField(db_index=True)
    channel = fields.CharField(max_length=16)
    address = fields.CharField(max_length=320)
    code_hash = fields.CharField(max_length=64)
    attempts = fields.SmallIntField(default=0)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "address_claim"


class LessonTopic(Model):
    """A lesson's topic as the register recorded it (issue #20), by the register's id."""

    id = fields.CharField(max_length=64, primary_key=True)
    class_name = fields.CharField(max_length=32)
    subject = fields.CharField(max_length=100)
    date = fields.DateField()
    period = fields.SmallIntField()
    topic = fields.CharField(max_length=500)
    teacher = fields.CharField(max_length=200, default="")
    updated_at = fields.DatetimeField()

    class Meta:
        table = "lesson_topic"
        indexes = (("class_name", "date"),)


class ReadingList(Model):
    """A list the library publishes (new acquisitions, a theme), by its own id (#20).

    A list with a `query` is a saved catalogue search: a scheduled job runs it against
    the catalogue and the records it finds become the list's items ("what came in this
    week"); `refreshed_at` is when it last did."""

    id = fields.CharField(max_length=64, primary_key=True)
    title = fields.CharField(max_length=300)
    description = fields.TextField(default="")
    updated_at = fields.DatetimeField()
    query = fields.CharField(max_length=500, null=True)
    refreshed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "reading_list"


class ReadingListItem(Model):
    """One book on a reading list; `key` tells an item seen before from a new one."""

    id = fields.BigIntField(primary_key=True)
    list_id = fields.CharField(max_length=64, db_index=True)
    key = fields.CharField(max_length=200)
    title = fields.CharField(max_length=500)
    author = fields.CharField(max_length=300, default="")
    year = fields.SmallIntField(null=True)
    isbn = fields.CharField(max_length=20, default="")
    note = fields.CharField(max_length=500, default="")
    position = fields.IntField(default=0)
    added_at = fields.DatetimeField()

    class Meta:
        table = "reading_list_item"
        unique_together = (("list_id", "key"),)


class ListSubscription(Model):
    """A person subscribed to a reading list (`/listy`), told of new items."""

    id = fields.BigIntField(primary_key=True)
    person_id = fields.IntField(db_index=True)
    list_id = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "list_subscription"
        unique_together = (("person_id", "list_id"),)


class DocumentSignature(Model):
    """What the verification of one signature found, for a file that came with a case
    (issue #20): a PDF signed with PAdES, an XML document signed with XAdES, or a
    detached signature (`signed_attachment_id` then names the file it covers).

    Stored once, on arrival: a signature's verdict is a fact about the bytes as they
    came, and the console and the residents' page show it without verifying again.
    `status`: valid | invalid (the document changed after signing) | untrusted (valid,
    but the chain does not end at a root of EMIL_SIGNATURE_TRUST_ROOTS) | unreadable."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="signatures", on_delete=fields.CASCADE
    )
    case_id: str  # the column Tortoise adds for it, declared for mypy
    attachment: fields.ForeignKeyRelation[Attachment] = fields.ForeignKeyField(
        "models.Attachment", related_name="signatures", on_delete=fields.CASCADE
    )
    attachment_id: int  # the column Tortoise adds for it, declared for mypy
    signed_attachment_id = fields.IntField(null=True)
    kind = fields.CharField(max_length=16)  # pades | xades | cades
    status = fields.CharField(max_length=16)
    signer = fields.CharField(max_length=300, default="")
    signed_at = fields.DatetimeField(null=True)
    qualified = fields.BooleanField(default=False)
    detail = fields.CharField(max_length=500, default="")
    checked_at = fields.DatetimeField()

    class Meta:
        table = "document_signature"
        indexes = (("case_id", "status"),)


class FigureCell(Model):
    """One cell of the schools' figures (issue #20), computed by a background job and
    read by the page: counting a school year of register entries takes seconds, the
    page must answer in milliseconds, and every instance must show the same numbers.

    `pupils` is how many pupils the cell describes; the page suppresses a cell under
    five. A year's cells are replaced together, in one transaction."""

    id = fields.BigIntField(primary_key=True)
    year = fields.SmallIntField()
    figure = fields.CharField(max_length=32)
    row_label = fields.CharField(max_length=100)
    column_label = fields.CharField(max_length=100)
    position = fields.IntField(default=0)
    value = fields.FloatField()
    pupils = fields.IntField()
    computed_at = fields.DatetimeField()

    class Meta:
        table = "figure_cell"
        indexes = (("year", "figure"),)
