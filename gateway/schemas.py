"""The JSON bodies of the API (`/api/v1/…`) as pydantic models: what a request may carry
and what an answer holds, each limit written once.

The API validates every JSON body with its model (`gateway.validate.read_body`) and builds
its answers from the answer models; the OpenAPI document (gateway/openapi.py) takes its
component schemas from the same classes. So a limit changed here changes the 400 and the
document together — before, each was written twice and the two had drifted (the document
allowed any `name`, the code 200 characters). The numbers come from where they are kept:
a text's limit from the column that stores it (`handlers.limits.column_limit`, as
`fit()` reads it), the lists of roles, statuses, scopes and languages from their modules.

The rules the API had before the models, kept (INTERFACES.md, "HTTP"):
- fields it does not know are ignored, not refused (`extra="ignore"`);
- `null` is the same as leaving a field out (`Body._null_is_absent`);
- types are JSON's own: `"5"` is not a number and `true` is not `1` (`strict=True`);
- a required text must not be blank (`NOT_BLANK`), and names and titles are stripped;
- a whole number is at most 2**53 either way (what a JSON parser elsewhere can hold), an
  id one a database integer can hold.
What a request body means beyond its shape stays with the handlers, which every channel
shares: an address parsed, a role list checked, a date read.

The document leaves `null` out of a request's optional fields (as it did: schemathesis
would generate them all), and says it where an answer holds one (`category`, a history
entry's `status`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from gateway.auth import SCOPES
from handlers.i18n import LANGUAGES
from handlers.limits import MAX_EMAIL, MAX_TEXT, column_limit
from handlers.preferences import DIGEST_MODES
from store.models import (
    CASE_STATUSES,
    ROLES,
    Announcement,
    ApiKey,
    Case,
    Identity,
    Person,
    Student,
)

#: a text with at least one character that is not a space (JSON Schema's `pattern` is a
#: search, as pydantic's is: one match anywhere is enough)
NOT_BLANK = r"\S"
#: the largest whole number a JSON number is sure to hold exactly (IEEE 754 double)
JSON_INT = 2**53
#: the largest row id: PostgreSQL's `integer` (a larger one reached the store as an error)
MAX_ID = 2**31 - 1
#: how an announcement is sent
Priority = Literal["normal", "urgent"]
#: a person's units and a unit's name (handlers/people.py says the same for every channel)
MAX_UNITS, MAX_UNIT = 50, 64
#: a student's guardians
MAX_GUARDIANS = 100
#: an attachment's file name (the common file-system limit) and media type (RFC 6838
#: section 4.2: type and subtype names of at most 127 characters)
MAX_FILENAME, MAX_MEDIA_TYPE = 255, 127
#: the `Idempotency-Key` header of a new case (a header, read in gateway/api.py)
MAX_IDEMPOTENCY_KEY = 200


def _column(model: Any, column: str) -> int:
    limit = column_limit(model, column)
    assert limit is not None, f"{model.__name__}.{column} has no length"
    return limit


def named(limit: int) -> StringConstraints:
    """A required name or title: stripped, not blank, at most `limit` characters after."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=limit,
                             pattern=NOT_BLANK)


def at_most(limit: int) -> Any:
    """A text of at most `limit` characters, kept as it was written."""
    return Field(max_length=limit)


#: a required long text (a case's body, an announcement's): not blank, not stripped
LongText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK)]
WholeNumber = Annotated[int, Field(ge=-JSON_INT, le=JSON_INT)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
CaseStatus = Literal[CASE_STATUSES]  # type: ignore[valid-type]
Role = Literal[ROLES]  # type: ignore[valid-type]
Language = Literal[LANGUAGES]  # type: ignore[valid-type]
Scope = Literal[SCOPES]  # type: ignore[valid-type]
DigestMode = Literal[DIGEST_MODES]  # type: ignore[valid-type]


class Body(BaseModel):
    """A request body (see the module's docstring for the rules)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, value: Any) -> Any:
        """`{"email": null}` is `{}`: a required field given as null is missing."""
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not None}
        return value


class Answer(BaseModel):
    """An answer's body: what it holds is checked as it is built, so the document's word
    is the code's. Fields a handler adds beyond the model pass through (as `{"type":
    "object"}` allowed before) until the model names them."""

    model_config = ConfigDict(extra="allow")

    def dump(self) -> dict[str, Any]:
        """The JSON answer: what was given, and nothing that was left out."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- requests ---------------------------------------------------------------------------


class NewCase(Body):
    """`POST /api/v1/cases`."""

    subject: Annotated[str, named(_column(Case, "subject"))]
    body: LongText
    email: Annotated[str, at_most(MAX_EMAIL)] | None = None
    category: Annotated[str, at_most(_column(Case, "category"))] | None = None


class CaseEvent(Body):
    """`POST /api/v1/cases/{number}/events`: a status, a note or both."""

    status: CaseStatus | None = None
    note: Annotated[str, at_most(MAX_TEXT)] | None = None
    public: bool = True


class NewPerson(Body):
    """`POST /api/v1/people`."""

    name: Annotated[str, named(_column(Person, "name"))]
    roles: Annotated[list[Role], Field(min_length=1)]
    email: Annotated[str, at_most(MAX_EMAIL)] | None = None
    telegram_chat_id: WholeNumber | Annotated[str, at_most(_column(Identity, "address"))] | None = None
    phone: str | None = None
    library_card: Annotated[str, at_most(_column(Person, "library_card"))] | None = None
    units: Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_UNIT)]],
                     Field(max_length=MAX_UNITS)] = []
    language: Language | None = None
    #: the register's Student id of the pupil this person is; only with role `student`
    student: WholeNumber | Annotated[str, named(_column(Student, "id"))] | None = None


class Preferences(Body):
    """`PATCH /api/v1/people/{id}`: the fields given are changed."""

    digest_mode: DigestMode | None = None
    digest_hour: Annotated[int, Field(ge=0, le=23)] | None = None
    quiet_start: Annotated[str, Field(max_length=5)] | None = None
    quiet_end: Annotated[str, Field(max_length=5)] | None = None
    channel_order: Annotated[list[str], Field(min_length=1)] | None = None
    language: Language | None = None
    plain_letters: bool | None = None
    notices: dict[str, Any] | None = None


class NewStudent(Body):
    """`POST /api/v1/students`: `id` is the register's own, a text or a number."""

    id: WholeNumber | Annotated[str, named(_column(Student, "id"))]
    name: Annotated[str, named(_column(Student, "name"))]
    class_name: Annotated[str, at_most(_column(Student, "class_name"))] = Field("", alias="class")
    guardians: Annotated[list[RowId], Field(max_length=MAX_GUARDIANS)] = []


class NewApiKey(Body):
    """`POST /api/v1/api-keys`."""

    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES))]
    label: Annotated[str, at_most(_column(ApiKey, "label"))] = ""


class Audience(Body):
    """Units and roles (roles narrow units); at least one name, which the handler checks."""

    units: list[Annotated[str, Field(min_length=1)]] = []
    roles: list[Annotated[str, Field(min_length=1)]] = []


class NewAttachment(Body):
    """A file of an announcement, base64; its size is checked once decoded (413)."""

    filename: Annotated[str, named(MAX_FILENAME)]
    content_type: Annotated[str, at_most(MAX_MEDIA_TYPE)] = "application/octet-stream"
    data: str


class NewAnnouncement(Body):
    """`POST /api/v1/announcements`."""

    title: Annotated[str, named(_column(Announcement, "title"))]
    body: LongText
    audience: Audience
    publish_at: str | None = None
    priority: Priority = "normal"
    author_id: RowId | None = None
    attachment: NewAttachment | None = None


# --- answers ----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = Field(None, description="the field at fault, when one is")


class Error(BaseModel):
    """Every 4xx and 5xx of the API (gateway/errors.py)."""

    error: ErrorDetail


class CaseCreated(Answer):
    number: str
    status: CaseStatus
    access_code: str | None = Field(None, description="for a `cases` key, and for an "
                                    "anonymous case without `email`")


class HistoryEntry(Answer):
    at: str
    kind: str
    status: str | None
    text: str


class CaseView(Answer):
    number: str
    status: CaseStatus
    open311_status: Literal["open", "closed"]
    subject: str
    category: str | None
    created_at: str
    updated_at: str
    history: list[HistoryEntry] | None = None


class CaseEventDone(CaseView):
    id: int


class PersonCreated(Answer):
    id: int


class PreferencesSaved(Answer):
    """The person's id and the preferences changed, as stored."""

    id: int
    digest_mode: str | None = None
    digest_hour: int | None = None
    quiet_start: str | None = None
    quiet_end: str | None = None
    channel_order: list[str] | None = None
    language: str | None = None
    plain_letters: bool | None = None
    notices: dict[str, Any] | None = None


class LinkCode(Answer):
    code: str
    expires_at: str
    link: str | None = None


class StudentSaved(Answer):
    id: str
    changed: bool


class ApiKeyInfo(Answer):
    id: int
    label: str
    scopes: list[str]
    revoked: bool
    created_at: str


class ApiKeys(Answer):
    keys: list[ApiKeyInfo]


class ApiKeyCreated(Answer):
    key: str
    scopes: list[str]
    label: str


class ApiKeyRevoked(Answer):
    id: int
    revoked: bool


class RenewalInfo(Answer):
    id: int
    loan: str
    card: str
    old_due: str
    new_due: str
    channel: str
    at: str


class Renewals(Answer):
    renewals: list[RenewalInfo]


class JobSummary(Answer):
    """What a job did; each job says it in its own words."""


class AnnouncementQueued(Answer):
    id: int
    status: str
    publish_at: str | None


class AnnouncementState(Answer):
    id: int
    status: str


class AnnouncementRetracted(AnnouncementState):
    notices: int


class Recipient(Answer):
    id: int
    name: str | None


class AnnouncementStats(Answer):
    id: int
    status: str
    title: str
    recipients: int
    queued: int
    #: copies that left the gateway, those confirmed delivered among them
    sent: int
    #: of `sent`, those the channel reported delivered (an SMS delivery report)
    delivered: int
    failed: int
    cancelled: int
    acknowledged: int
    failed_recipients: list[Recipient]
    unacknowledged: list[Recipient]


# --- the document's view of them -------------------------------------------------------


class DocumentSchema(GenerateJsonSchema):
    """JSON Schema as the document states it. A field that defaults to None may be left
    out, and that is all its `None` means: the document offers neither `null` (a request
    may send it, read as absent — the document never offered it, and schemathesis would
    generate it for every field) nor a `null` default. A field without a default that
    may hold None (an answer's `category`) says `null`. No titles: the names say it."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        inner = schema["schema"]
        if schema.get("default", ...) is None and inner["type"] == "nullable":
            return self.generate_inner(inner["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False
