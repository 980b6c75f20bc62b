"""Issue #18, fault 1: every MIME shape a mail program writes opens a case with its text and
its files, and no MIME tree makes the parser raise.

Two halves: a corpus of mail as real programs write it (tests/data/mail/programs/, sent
through real SMTP), and a Hypothesis strategy that builds MIME trees of every kind and
checks that each leaf's text or file ends up in the body or the attachments.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail.parse import parse_bytes, to_inbound
from store.models import Attachment, Case
from tests.conftest import Gateway
from tests.test_properties import examples

PROGRAMS = Path(__file__).parent / "data" / "mail" / "programs"

PDF = b"%PDF-1.4"
JPEG = b"\xff\xd8\xff\xe0"
PNG = b"\x89PNG"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass
class Expected:
    """What the clerk must find in the case a program's mail opens."""

    subject: str
    body: list[str]
    #: (file name, content type, first bytes) in the order the mail carries them
    files: list[tuple[str, str, bytes]] = field(default_factory=list)
    #: what must not appear in the body (HTML, the PGP signature, …)
    not_in_body: list[str] = field(default_factory=list)


CORPUS: dict[str, Expected] = {
    # mutt's default is `Content-Disposition: inline` on the text: today 250, then dropped
    "mutt_inline.eml": Expected("Dziura w jezdni na ul. Brzozowej",
                                ["głęboka dziura w jezdni", "Krzysztof Wiśniewski"]),
    "mutt_text_attachment.eml": Expected(
        "Lista lamp do naprawy", ["lista lamp, które nie świecą"],
        [("lampy_żarowe.txt", "text/plain", "Lampa przy Kościelnej 3".encode())],
        not_in_body=["Lampa przy"]),
    # the detached signature is not a file for the clerk (it stays in the raw mail)
    "mutt_pgp_signed.eml": Expected("Podpisany wniosek o kopię decyzji",
                                    ["kopię decyzji w sprawie pozwolenia na wycinkę drzewa"],
                                    not_in_body=["PGP SIGNATURE"]),
    # format=flowed (RFC 3676): the soft line break is joined again
    "thunderbird_pdf.eml": Expected("Wniosek o dowód osobisty",
                                    ["dowodu osobistego dla córki", "Małgorzata Zięba"],
                                    [("wniosek_dowód.pdf", "application/pdf", PDF)]),
    # a forwarded mail: its text quoted into the body, its files among the case's files
    "thunderbird_forward_attached.eml": Expected(
        "Fwd: Odpowiedź spółdzielni",
        ["Przesyłam odpowiedź spółdzielni", "Odpowiedź spółdzielni",
         "Spółdzielnia nie jest zarządcą terenu przy ul. Wojska Polskiego."],
        [("pismo.pdf", "application/pdf", PDF)]),
    # text, an inline photo, then the rest of the text: both texts are the body
    "apple_ios_photo.eml": Expected("Powalone drzewo w parku",
                                    ["przewróciło się drzewo", "Wysłane z iPhone’a"],
                                    [("IMG_0421.jpeg", "image/jpeg", JPEG)]),
    # the file sits inside the HTML alternative; its name is in decomposed Unicode
    "apple_macos_pdf.eml": Expected("Zaświadczenie o zameldowaniu",
                                    ["zaświadczenia o zameldowaniu", "Ewa Kamińska"],
                                    [("zaświadczenie o zameldowaniu.pdf", "application/pdf",
                                      PDF)], not_in_body=["<"]),
    "outlook_desktop.eml": Expected(
        "Oświadczenie właściciela", ["przesyłam oświadczenie właściciela nieruchomości"],
        [("image001.png", "image/png", PNG), ("Oświadczenie.docx", DOCX, b"PK")],
        not_in_body=["MsoNormal", "<"]),
    "outlook_com.eml": Expected("Skan dokumentu tożsamości",
                                ["skan dokumentu tożsamości do sprawy meldunkowej"],
                                [("skan_dowodu.pdf", "application/pdf", PDF)]),
    "outlook_invitation.eml": Expected(
        "Spotkanie w sprawie budowy drogi", ["Proponuję spotkanie w urzędzie"],
        [("załącznik-1.ics", "text/calendar", b"BEGIN:VCALENDAR")],
        not_in_body=["VCALENDAR"]),
    "gmail_web.eml": Expected("Wniosek o dodatek mieszkaniowy",
                              ["w załączniku wniosek o dodatek mieszkaniowy"],
                              [("wniosek o dodatek mieszkaniowy.pdf", "application/pdf", PDF)],
                              not_in_body=["<div"]),
    "gmail_android.eml": Expected("Zdjęcie zniszczonego przystanku", ["wybitą szybę"],
                                  [("przystanek-żółty.jpg", "image/jpeg", JPEG)]),
    "onet_poczta.eml": Expected("Zgłoszenie - dziura w chodniku",
                                ["chodnik jest zapadnięty"],
                                [("zdjęcie chodnika przy przejściu.jpg", "image/jpeg", JPEG)]),
    # HTML-only body with a PDF: today 250, then dropped
    "wp_poczta_html_pdf.eml": Expected(
        "Deklaracja śmieciowa",
        ["deklaracja o wysokości opłaty za gospodarowanie odpadami", "Marek Woźniak"],
        [("deklaracja_śmieciowa.pdf", "application/pdf", PDF)], not_in_body=["<div"]),
    # the attachment before the body: today 250, then dropped
    "interia_attachment_first.eml": Expected(
        "Wniosek o wycinkę drzewa", ["Proszę o zgodę na wycinkę brzozy"],
        [("wniosek_wycinka.pdf", "application/pdf", PDF)]),
    "o2_poczta.eml": Expected("Wniosek o ławkę", ["ławki przy placu zabaw na ul. Żółwiej"],
                              [("wniosek_ławka.doc", "application/msword",
                                b"\xd0\xcf\x11\xe0")]),
    # the whole mail is one inline PDF: today 250, then dropped
    "single_inline_pdf.eml": Expected("Skan", [], [("skan0001.pdf", "application/pdf", PDF)]),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_real_programs_mail_opens_a_case(gw: Gateway, name: str) -> None:
    expected = CORPUS[name]
    replies = await gw.mail((PROGRAMS / name).read_bytes())
    case = await Case.get()
    assert case.subject == expected.subject
    for text in expected.body:
        assert text in case.body, (text, case.body)
    for text in expected.not_in_body:
        assert text not in case.body, (text, case.body)
    stored = await Attachment.filter(case_id=case.number).order_by("id")
    assert [(a.filename, a.content_type) for a in stored] == [
        (file, content_type) for file, content_type, _ in expected.files]
    for attachment, (_, _, start) in zip(stored, expected.files, strict=True):
        assert start in bytes(attachment.data)
    assert len(replies) == 1 and case.number in replies[0]["Subject"]


def test_the_corpus_is_every_file_in_the_folder() -> None:
    assert sorted(p.name for p in PROGRAMS.glob("*.eml")) == sorted(CORPUS)


# --- Generated MIME trees -----------------------------------------------------------------

POLISH_NAMES = st.text(alphabet="abcząćęłńóśźżĄĆĘŁŃÓŚŹŻ _-0123456789", min_size=1, max_size=24)
CHARSETS = st.sampled_from(["utf-8", "UTF-8", "iso-8859-2", "windows-1250", None, "us-ascii",
                            "x-unknown-8859", "undefined", "hex", ""])
#: the transfer encodings a leaf may claim; "broken-base64" is base64 cut and littered
ENCODINGS = st.sampled_from(["7bit", "8bit", "quoted-printable", "base64", "x-uuencode",
                             "x-gzip64", None, "broken-base64", "BASE64", "binary"])
DISPOSITIONS = st.sampled_from([None, "inline", "attachment", "INLINE", "bogus", ""])
NAME_STYLES = st.sampled_from(["none", "plain", "rfc2231", "rfc2047", "raw-utf8", "name-only",
                               "continued"])


@dataclass
class Leaf:
    """One generated body part and what it must become."""

    kind: str  # text, html, calendar, pdf, png, signature
    marker: str
    charset: str | None
    encoding: str | None
    disposition: str | None
    filename: str | None
    name_style: str

    def data(self) -> bytes:
        """The part's decoded content (as the reader must get it back)."""
        if self.kind == "text":
            return self._encode(f"Zgłoszenie {self.marker} żółć\n")
        if self.kind == "html":
            return self._encode(f"<html><body><p>Wniosek <b>{self.marker}</b> gęś</p></body></html>")
        if self.kind == "calendar":
            return self._encode(f"BEGIN:VCALENDAR\nSUMMARY:{self.marker}\nEND:VCALENDAR\n")
        if self.kind == "pdf":
            return b"%PDF-1.4 " + self.marker.encode() + b" \x00\xff\xe2"
        if self.kind == "png":
            return b"\x89PNG\x1a" + self.marker.encode() + b"\x00\x01\xfe"
        return b"-----BEGIN PGP SIGNATURE-----\n" + self.marker.encode() + b"\n-----END PGP"

    def _encode(self, text: str) -> bytes:
        # a charset Python knows is honoured; an unknown or missing one carries UTF-8,
        # which is what the parser tries next
        try:
            return text.encode(self.charset or "utf-8")
        except (LookupError, UnicodeError):
            return text.encode("utf-8")

    @property
    def content_type(self) -> str:
        return {"text": "text/plain", "html": "text/html", "calendar": "text/calendar",
                "pdf": "application/pdf", "png": "image/png",
                "signature": "application/pgp-signature"}[self.kind]

    @property
    def checked(self) -> bool:
        """Whether the content must be found again: broken base64 may lose bytes."""
        return self.encoding != "broken-base64"


@dataclass
class Node:
    kind: str  # mixed, alternative, related, signed, rfc822
    children: list[Node | Leaf]
    #: programs put Content-Disposition on multiparts and forwarded mail too (mutt)
    disposition: str | None = None


def _leaf(kind: str) -> st.SearchStrategy[Leaf]:
    return st.builds(
        Leaf, st.just(kind),
        st.integers(0, 10**9).map(lambda n: f"znacznik{n}x"),
        CHARSETS if kind in ("text", "html", "calendar") else st.none(),
        ENCODINGS, DISPOSITIONS,
        POLISH_NAMES.map(lambda n: n.strip() or "plik") | st.none(), NAME_STYLES)


LEAVES = st.one_of(*[_leaf(kind) for kind in ("text", "html", "calendar", "pdf", "png")])


FILES = st.one_of(*[_leaf(kind) for kind in ("pdf", "png", "calendar")])


def _alternative() -> st.SearchStrategy[Node]:
    # an alternative's versions carry the same words, as real ones do; the richer
    # version may bring files along (macOS Mail, Outlook's related images)
    @st.composite
    def build(draw) -> Node:  # type: ignore[no-untyped-def]
        plain = draw(_leaf("text"))
        html = draw(_leaf("html"))
        html.marker = plain.marker
        richer: Node | Leaf = html
        if draw(st.booleans()):
            richer = Node(draw(st.sampled_from(["related", "mixed"])),
                          [html] + draw(st.lists(FILES, max_size=2)))
        parts: list[Node | Leaf] = [plain, richer]
        if draw(st.booleans()):
            parts.append(draw(_leaf("calendar")))
        return Node("alternative", parts)
    return build()


def _trees(children: st.SearchStrategy) -> st.SearchStrategy:
    nodes = (st.builds(Node, st.sampled_from(["mixed", "related"]),
                       st.lists(children, min_size=1, max_size=4))
             | _alternative()
             | st.builds(lambda body, sig: Node("signed", [body, sig]), children,
                         _leaf("signature"))
             | st.builds(lambda body: Node("rfc822", [body]), children))
    return st.builds(lambda node, disposition: replace(node, disposition=disposition),
                     nodes, DISPOSITIONS)


MIME_TREES = st.recursive(LEAVES, _trees, max_leaves=12)


def _name_params(leaf: Leaf) -> tuple[str, str]:
    """(Content-Type parameters, Content-Disposition parameters) naming the file."""
    name = leaf.filename
    if name is None or leaf.name_style == "none":
        return "", ""
    if leaf.name_style == "plain" or name.isascii():
        return f'; name="{name}"', f'; filename="{name}"'
    if leaf.name_style == "rfc2231":
        return "", f"; filename*=UTF-8''{quote(name, safe='')}"
    if leaf.name_style == "continued":
        quoted = quote(name, safe="")
        half = quoted.find("%", len(quoted) // 2)
        half = len(quoted) if half < 0 else half
        return "", f"; filename*0*=utf-8''{quoted[:half]}; filename*1*={quoted[half:]}"
    encoded = "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="
    if leaf.name_style == "rfc2047":
        return f'; name="{encoded}"', f'; filename="{encoded}"'
    if leaf.name_style == "name-only":
        return f'; name="{encoded}"', ""
    return "", f'; filename="{name}"'  # raw UTF-8, as some webmails write it


def _encode_body(leaf: Leaf, data: bytes) -> tuple[str | None, bytes]:
    encoding = leaf.encoding
    if encoding in ("base64", "BASE64"):
        return encoding, base64.encodebytes(data)
    if encoding == "broken-base64":
        text = base64.b64encode(data).rstrip(b"=")
        return "base64", text[: len(text) // 2] + b"!*\r\n" + text[len(text) // 2:]
    if encoding == "quoted-printable":
        return encoding, quopri.encodestring(data, quotetabs=True)
    if encoding == "x-uuencode":
        lines = [binascii.b2a_uu(data[i:i + 45]) for i in range(0, len(data), 45)]
        return encoding, b"begin 644 plik\n" + b"".join(lines) + b"`\nend\n"
    if leaf.kind in ("pdf", "png") or encoding in ("7bit", None):
        # binary data written as it is, with whatever label (mail in the wild does this)
        return encoding, data.replace(b"\r", b"").replace(b"\n", b"\r\n")
    return encoding, data.replace(b"\r", b"").replace(b"\n", b"\r\n")


def render(tree: Node | Leaf, depth: int = 0) -> bytes:
    if isinstance(tree, Leaf):
        ctype_params, disp_params = _name_params(tree)
        head = f"Content-Type: {tree.content_type}"
        if tree.charset is not None:
            head += f'; charset="{tree.charset}"' if tree.charset else "; charset="
        head += ctype_params
        lines = [head]
        if tree.disposition is not None or disp_params:
            lines.append(f"Content-Disposition: {tree.disposition or 'attachment'}{disp_params}")
        encoding, body = _encode_body(tree, tree.data())
        if encoding:
            lines.append(f"Content-Transfer-Encoding: {encoding}")
        return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body
    disposition = b"" if tree.disposition is None else (
        b"Content-Disposition: " + tree.disposition.encode() + b"\r\n")
    if tree.kind == "rfc822":
        inner = render(tree.children[0], depth + 1)
        return (b"Content-Type: message/rfc822\r\n" + disposition + b"\r\n"
                + "From: Przekazujący <fwd@example.pl>\r\nSubject: =?utf-8?q?Przekazana?=\r\n"
                  "MIME-Version: 1.0\r\n".encode() + inner)
    boundary = f"=_b{depth}_{id(tree)}".encode()
    params = b'; protocol="application/pgp-signature"' if tree.kind == "signed" else b""
    out = b"Content-Type: multipart/" + tree.kind.encode() + b'; boundary="' + boundary + b'"' \
        + params + b"\r\n" + disposition + b"\r\npreamble\r\n"
    for child in tree.children:
        out += b"--" + boundary + b"\r\n" + render(child, depth + 1) + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def leaves(tree: Node | Leaf) -> list[Leaf]:
    if isinstance(tree, Leaf):
        return [tree]
    return [leaf for child in tree.children for leaf in leaves(child)]


def mail_of(tree: Node | Leaf) -> bytes:
    return (b"From: =?utf-8?q?Jan_Kowalski?= <jan@example.pl>\r\nTo: sprawy@milanowek.example\r\n"
            b"Subject: Drzewo\r\nMessage-ID: <t@example.pl>\r\nMIME-Version: 1.0\r\n"
            + render(tree))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MIME_TREES)
def test_every_part_of_any_mime_tree_reaches_the_body_or_the_files(tree: Node | Leaf) -> None:
    msg = to_inbound(parse_bytes(mail_of(tree)), "jan@example.pl", "sprawy")
    files = [a.data for a in msg.attachments]
    names = [a.filename for a in msg.attachments]
    assert all(name and "/" not in name and "\\" not in name for name in names)
    for leaf in leaves(tree):
        if leaf.kind == "signature":
            assert leaf.data() not in files  # the detached signature is no file for the clerk
            continue
        if not leaf.checked:
            continue
        if leaf.kind in ("text", "html", "calendar"):  # line ends may become CRLF on the way
            in_files = any(leaf.marker.encode() in data for data in files)
            assert leaf.marker in msg.text or in_files, (leaf, msg.text, names)
            assert leaf.kind != "calendar" or in_files  # an invitation is a file
        else:
            assert leaf.data() in files, (leaf, names)
        if leaf.filename and leaf.name_style != "none":  # a named part is a file, so named
            assert unicodedata.normalize("NFC", leaf.filename) in names, (leaf, names)


async def test_generated_mime_trees_open_cases_over_smtp(gw: Gateway) -> None:
    for n, tree in enumerate(examples(MIME_TREES, 12)):
        await gw.mail(mail_of(tree).replace(b"<t@example.pl>", b"<t%d@example.pl>" % n),
                      sender=f"p{n}@example.pl")
    assert await Case.all().count() == 12


def test_mail_forwarded_deeper_than_python_recurses_still_parses() -> None:
    # the SMTP server's nesting bound counts multiparts, not forwarded messages
    raw = b"Subject: x\r\n\r\nNajglebiej"
    for _ in range(3000):
        raw = b"Content-Type: message/rfc822\r\n\r\n" + raw
    msg = to_inbound(parse_bytes(b"From: a@example.pl\r\nSubject: Fwd\r\n" + raw), "", "sprawy")
    assert msg.subject == "Fwd" and msg.attachments  # kept as a file, not walked


def test_raw_8bit_headers_and_names_are_read_as_utf8_or_windows_1250() -> None:
    raw = ("From: Łucja <lucja@example.pl>\r\nSubject: Zażółć gęślą jaźń\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTreść\r\n"
           "--b\r\nContent-Type: application/pdf\r\n"
           "Content-Disposition: attachment; filename=\"wniosek_łąka.pdf\"\r\n\r\n%PDF\r\n"
           "--b--\r\n").encode("utf-8")
    msg = to_inbound(parse_bytes(raw), "", "sprawy")
    assert (msg.subject, msg.display_name, msg.text) == ("Zażółć gęślą jaźń", "Łucja", "Treść")
    assert [a.filename for a in msg.attachments] == ["wniosek_łąka.pdf"]
    legacy = raw.decode("utf-8").encode("cp1250")
    assert to_inbound(parse_bytes(legacy), "", "sprawy").attachments[0].filename == \
        "wniosek_łąka.pdf"
