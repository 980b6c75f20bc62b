"""Issue #20: signed documents are verified on arrival. A test CA built with
`cryptography` (a root, an intermediate, signers with and without the QcCompliance
statement, and a second root nobody trusts); PDFs signed by pyHanko's own signer, XML by
endesive's XAdES-BES signer, detached CMS by pyHanko's CMS signer — independent of the
verifier's code — then verified, tampered with, and shown in the console and on the
residents' page, in Polish and English."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from endesive.xades import BES
from lxml import etree
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore
from tortoise.transactions import in_transaction

from gateway.app import create_app
from gateway.keys import HEALTH
from handlers import audit, i18n, rodo, signature_check, signatures
from handlers.signatures import Verdict
from store.models import Attachment, Case, DocumentSignature
from tests.conftest import PG_URL, Gateway, make_mail
from tests.panel import sign_in, staff_member

#: QCStatements holding only QcCompliance: SEQUENCE { SEQUENCE { OID 0.4.0.1862.1.1 } }
QC_COMPLIANCE_DER = bytes.fromhex("300a3008060604008e460101")
NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Party:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.der)


def _name(common: str, organisation: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def issue(subject: x509.Name, issuer: Party | None, *, ca: bool, qualified: bool = False,
          not_before: datetime = NOT_BEFORE, days: int = 3650) -> Party:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_before + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    if qualified:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(signatures.QC_STATEMENTS), QC_COMPLIANCE_DER), critical=False)
    return Party(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


@dataclass
class Pki:
    root: Party
    intermediate: Party
    qualified: Party  # Jan Kowalski, with QcCompliance
    plain: Party  # Anna Nowak (Firma), without
    stranger: Party  # signed under a root nobody trusts

    @property
    def bundle(self) -> bytes:
        """EMIL_SIGNATURE_TRUST_ROOTS as a trusted list gives it: the issuing CA (the
        trust service's own certificate, eIDAS trusted lists' anchor) and its root."""
        return self.root.pem + self.intermediate.pem

    @property
    def roots(self) -> list[Any]:
        return signatures.load_roots(self.bundle)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue(_name("Milanówek Test Root CA"), None, ca=True)
    intermediate = issue(_name("Milanówek Test Signing CA"), root, ca=True)
    other_root = issue(_name("Nobody's Root CA"), None, ca=True)
    return Pki(root=root, intermediate=intermediate,
               qualified=issue(_name("Jan Kowalski"), intermediate, ca=False, qualified=True),
               plain=issue(_name("Anna Nowak", "Firma Testowa"), intermediate, ca=False),
               stranger=issue(_name("Zenon Obcy"), other_root, ca=False, qualified=True))


# --- signing, with the signers' own libraries ---------------------------------------------


def blank_pdf() -> bytes:
    writer = PdfFileWriter()
    writer.insert_page(generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject(
            [generic.NumberObject(n) for n in (0, 0, 595, 842)])}))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pyhanko_signer(party: Party, pki: Pki) -> signers.SimpleSigner:
    key = asn1_keys.PrivateKeyInfo.load(party.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return signers.SimpleSigner(signing_cert=party.asn1, signing_key=key,
                                cert_registry=SimpleCertificateStore.from_certs(
                                    [pki.intermediate.asn1]))


def signed_pdf(party: Party, pki: Pki) -> bytes:
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(blank_pdf())),
                           signers.PdfSignatureMetadata(field_name="Podpis"),
                           signer=_pyhanko_signer(party, pki))
    return out.getvalue()


XML_DOCUMENT = ('<?xml version="1.0" encoding="UTF-8"?><wniosek><organ>Urząd Miasta '
                'Milanówka</organ><tresc>Proszę o wydanie zaświadczenia.</tresc>'
                '</wniosek>').encode()


def _xml_signer(party: Party) -> Any:
    def sign(data: bytes, algorithm: str) -> bytes:
        return party.key.sign(data, padding.PKCS1v15(), getattr(hashes, algorithm.upper())())

    return sign


def signed_xml(party: Party, pki: Pki, document: bytes = XML_DOCUMENT) -> bytes:
    tree = BES().enveloped(document, party.cert, party.der, _xml_signer(party), None, None)
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def enveloping_xml(party: Party, document: bytes = XML_DOCUMENT) -> bytes:
    """endesive's enveloping XAdES-BES: the root is the ds:Signature, the document sits
    in a ds:Object its reference names by Id."""
    tree = BES().enveloping("wniosek.xml", document, "text/xml", party.cert, party.der,
                            _xml_signer(party), base64encode=False)
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def detached_cms(party: Party, pki: Pki, data: bytes) -> bytes:
    signed = asyncio.run(_pyhanko_signer(party, pki).async_sign_general_data(
        data, "sha256", detached=True))
    return signed.dump()


def tampered(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) >= 1
    return data.replace(old, new, 1)


def one(verdicts: list[Verdict]) -> Verdict:
    assert len(verdicts) == 1, verdicts
    return verdicts[0]


# --- the verifier ---------------------------------------------------------------------------


def test_a_pdf_signed_under_a_trusted_root_is_valid_and_qualified(pki: Pki) -> None:
    verdict = one(signatures.verify("wniosek.pdf", "application/pdf",
                                    signed_pdf(pki.qualified, pki), pki.roots))
    assert (verdict.kind, verdict.status, verdict.signer) == ("pades", "valid", "Jan Kowalski")
    assert verdict.qualified is True
    assert verdict.signed_at and abs(datetime.fromisoformat(verdict.signed_at)
                                     - datetime.now(UTC)) < timedelta(minutes=5)
    plain = one(signatures.verify("umowa.pdf", "application/pdf", signed_pdf(pki.plain, pki),
                                  pki.roots))
    assert plain.status == "valid" and plain.qualified is False
    assert plain.signer == "Anna Nowak (Firma Testowa)"
    # a PDF carries its intermediate: the root alone is enough
    root_only = signatures.load_roots(pki.root.pem)
    assert one(signatures.verify("wniosek.pdf", "", signed_pdf(pki.qualified, pki),
                                 root_only)).status == "valid"


def test_a_pdf_changed_after_signing_is_invalid(pki: Pki) -> None:
    data = signed_pdf(pki.qualified, pki)
    changed = tampered(data, b"/MediaBox [ 0 0 595 842 ]", b"/MediaBox [ 0 0 595 843 ]")
    verdict = one(signatures.verify("wniosek.pdf", "application/pdf", changed, pki.roots))
    assert (verdict.status, verdict.detail, verdict.qualified) == ("invalid", "changed", False)


def test_a_pdf_signed_under_an_unknown_root_is_untrusted(pki: Pki) -> None:
    data = signed_pdf(pki.stranger, pki)
    verdict = one(signatures.verify("wniosek.pdf", "application/pdf", data, pki.roots))
    # valid maths, unknown issuer: untrusted, and never called qualified
    assert (verdict.status, verdict.signer, verdict.qualified) == ("untrusted", "Zenon Obcy",
                                                                   False)
    # no roots configured: nothing is trusted (never the system's TLS roots)
    own = one(signatures.verify("wniosek.pdf", "application/pdf",
                                signed_pdf(pki.qualified, pki), []))
    assert own.status == "untrusted"


def test_an_unsigned_pdf_has_no_verdict_and_garbage_is_unreadable(pki: Pki) -> None:
    assert signatures.verify("skan.pdf", "application/pdf", blank_pdf(), pki.roots) == []
    for name, data in (("zepsuty.pdf", b"%PDF-1.7\n/Type /Sig /ByteRange [0 9\x00garbage"),
                       ("zepsuty.xml", b"<?xml version='1.0'?><a><ds:Signature xmlns:ds="
                                       b"'http://www.w3.org/2000/09/xmldsig#'></a>"),
                       ("podpis.p7s", b"\x30\x82\x01\x00 definitely not CMS")):
        verdict = one(signatures.verify(name, "application/octet-stream", data, pki.roots))
        assert verdict.status == "unreadable", (name, verdict)
    # a damaged file that shows no signature: nothing to say about signatures
    assert signatures.verify("skan.pdf", "", b"%PDF-1.4\x00garbage", pki.roots) == []
    assert signatures.verify("dane.xml", "", b"<?xml version='1.0'?><a><b></a>", pki.roots) == []


def test_an_xml_bomb_is_refused_unread(pki: Pki) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i else b"&lol;" * 10)
                       for i in range(1, 10))
            + b']><lolz>&lol9;<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
            + b'</lolz>')
    verdict = one(signatures.verify("bomba.xml", "text/xml", bomb, pki.roots))
    assert (verdict.status, verdict.detail) == ("unreadable", "malformed")
    # a document with a DTD that claims no signature: nothing to say
    xhtml = (b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
             b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html/>')
    assert signatures.verify("strona.xml", "text/xml", xhtml, pki.roots) == []


def test_xades_valid_tampered_and_untrusted(pki: Pki) -> None:
    data = signed_xml(pki.qualified, pki)
    verdict = one(signatures.verify("wniosek.xml", "text/xml", data, pki.roots))
    assert (verdict.kind, verdict.status, verdict.signer) == ("xades", "valid", "Jan Kowalski")
    assert verdict.qualified is True and verdict.signed_at is not None
    # the SigningTime endesive wrote into the SignedProperties
    assert abs(datetime.fromisoformat(verdict.signed_at) - datetime.now(UTC)) < timedelta(
        minutes=5)
    changed = tampered(data, "wydanie".encode(), "uchylen".encode())
    verdict = one(signatures.verify("wniosek.xml", "text/xml", changed, pki.roots))
    assert (verdict.status, verdict.detail) == ("invalid", "changed")
    stranger = one(signatures.verify("wniosek.xml", "text/xml", signed_xml(pki.stranger, pki),
                                     pki.roots))
    assert (stranger.status, stranger.qualified) == ("untrusted", False)
    assert signatures.verify("dane.xml", "text/xml", b"<?xml version='1.0'?><a/>",
                             pki.roots) == []


def test_a_detached_cms_signature_over_a_file(pki: Pki) -> None:
    scan = b"%PDF-1.4 a scanned application that carries no signature of its own"
    signature = detached_cms(pki.plain, pki, scan)
    verdict = one(signatures.verify("skan.pdf.p7s", "application/pkcs7-signature", signature,
                                    pki.roots, covered=scan))
    assert (verdict.kind, verdict.status, verdict.signer) == ("cades", "valid",
                                                              "Anna Nowak (Firma Testowa)")
    other = one(signatures.verify("skan.pdf.p7s", "application/pkcs7-signature", signature,
                                  pki.roots, covered=scan.replace(b"no", b"an")))
    assert (other.status, other.detail) == ("invalid", "changed")
    missing = one(signatures.verify("skan.pdf.p7s", "", signature, pki.roots))
    assert (missing.status, missing.detail) == ("unreadable", "missing")
    assert signatures.covered_name("skan.pdf.p7s") == "skan.pdf"


# --- on arrival: the background step, the pages, RODO ----------------------------------------


Documents = dict[str, tuple[str, bytes]]


@pytest.fixture(scope="module")
def documents(pki: Pki) -> Documents:
    """What signing applications send: a PAdES PDF, a XAdES XML changed after signing,
    and a scan with its detached signature beside it (signed once per module)."""
    scan = blank_pdf()  # a scan carries no signature of its own
    changed = tampered(signed_xml(pki.plain, pki), "wydanie".encode(), "uchylen".encode())
    return {"wniosek.pdf": ("pdf", signed_pdf(pki.qualified, pki)),
            "oswiadczenie.xml": ("xml", changed),
            "skan.pdf": ("pdf", scan),
            "skan.pdf.p7s": ("pkcs7-signature", detached_cms(pki.stranger, pki, scan))}


def signed_mail(documents: Documents, subject: str = "Wniosek o zaświadczenie") -> Any:
    msg = make_mail(subject, "W załączeniu podpisany wniosek.")
    for name, (subtype, data) in documents.items():
        msg.add_attachment(data, maintype="application", subtype=subtype, filename=name)
    return msg


def in_process(pki: Pki) -> signature_check.Verify:
    """The same verifier, in a thread of this process (cheaper than a child per file)."""
    async def verify(filename: str, content_type: str, data: bytes, covered: bytes | None
                     ) -> list[Verdict]:
        return await asyncio.to_thread(signatures.verify, filename, content_type, data,
                                       pki.roots, covered)

    return verify


async def test_a_child_that_overruns_its_time_is_killed_and_the_file_unreadable(
        pki: Pki, documents: Documents) -> None:
    verify = signature_check.child_verifier(pki.bundle, signature_check.Limits(seconds=0.01))
    [verdict] = await verify("wniosek.pdf", "application/pdf", documents["wniosek.pdf"][1],
                             None)
    assert (verdict.kind, verdict.status, verdict.detail) == ("pades", "unreadable", "timeout")


async def verdicts(number: str) -> dict[str, tuple[str, ...]]:
    names = dict(await Attachment.filter(case_id=number).values_list("id", "filename"))
    return {names[s.attachment_id]: (s.kind, s.status, s.detail, s.signer, s.qualified)
            for s in await DocumentSignature.filter(case_id=number)}


async def test_a_mailed_case_s_signed_files_are_verified_and_shown(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    [confirmation] = await gw.mail(signed_mail(documents))
    number = (await Case.get(subject="Wniosek o zaświadczenie")).number
    # the intake stored the case and answered; nothing is verified inside it
    assert await DocumentSignature.filter(case_id=number).count() == 0
    text = confirmation.get_body(("plain",)).get_content()
    assert "https://www.gov.pl/web/e-doreczenia" in text and "art. 63 § 1 KPA" in text

    verify = signature_check.child_verifier(pki.bundle)  # each file in a child process
    # nothing is being committed: every file is final at once, whatever its age (a
    # transaction still running holds the watermark back: the PostgreSQL test below)
    assert await signature_check.drain(verify, gw.clock.now()) == 4
    assert await verdicts(number) == {
        "wniosek.pdf": ("pades", "valid", "", "Jan Kowalski", True),
        "oswiadczenie.xml": ("xades", "invalid", "changed", "Anna Nowak (Firma Testowa)", False),
        "skan.pdf.p7s": ("cades", "untrusted", "chain", "Zenon Obcy", False)}
    detached = await DocumentSignature.get(case_id=number, kind="cades")
    assert detached.signed_attachment_id == (await Attachment.get(case_id=number,
                                                                  filename="skan.pdf")).id
    # again: nothing new, nothing doubled
    assert await signature_check.drain(verify, gw.clock.now()) == 0
    assert await DocumentSignature.filter(case_id=number).count() == 3

    await staff_member(gw)
    client = await sign_in(gw, "urzedniczka@milanowek.example")
    html = await (await client.get(f"/panel/sprawy/{number}")).text()
    assert "Podpisany przez <bdi>Jan Kowalski</bdi> dnia" in html
    assert "podpis ważny (kwalifikowany)" in html
    assert "Podpisany przez <bdi>Anna Nowak (Firma Testowa)</bdi> dnia" in html
    assert "podpis nieważny: dokument zmieniono po podpisaniu" in html
    assert "podpis ważny, ale niezaufany" in html and "podpis pliku <bdi>skan.pdf</bdi>" in html
    assert "ważny podpis kwalifikowany" in html
    english = await (await client.get(f"/panel/sprawy/{number}?lang=en")).text()
    assert "Signed by <bdi>Jan Kowalski</bdi> on" in english
    assert "valid signature (qualified)" in english
    assert "invalid signature: the document was changed after signing" in english
    assert "valid signature, but not trusted" in english
    queue = await (await client.get("/panel/sprawy?lang=pl")).text()
    assert f'{number}</a> <span class="tag"' in queue and "podpis kwalifikowany" in queue

    # the resident's page, from the mail's link
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    resident = gw.client
    await resident.get(link)
    page = await (await resident.get(f"/sprawy/{number}")).text()
    assert "Podpisane dokumenty" in page and "<bdi>wniosek.pdf</bdi>" in page
    assert "podpis ważny (kwalifikowany)" in page
    assert "podpis nieważny: dokument zmieniono po podpisaniu" in page
    assert 'href="https://www.gov.pl/web/e-doreczenia"' in page and "art. 63 § 1 KPA" in page
    page_en = await (await resident.get(f"/sprawy/{number}?lang=en")).text()
    assert "Signed documents" in page_en and "valid signature (qualified)" in page_en
    assert "left unexamined" in page_en


async def test_a_round_that_fails_stores_nothing_and_runs_again(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    await gw.mail(signed_mail(documents, "Awaria"))
    number = (await Case.get(subject="Awaria")).number
    real = in_process(pki)
    calls: list[str] = []

    async def dies_on_the_second(filename: str, content_type: str, data: bytes,
                                 covered: bytes | None) -> list[Verdict]:
        calls.append(filename)
        if len(calls) == 2:
            raise RuntimeError("the process was stopped here")
        return await real(filename, content_type, data, covered)

    with pytest.raises(RuntimeError):
        await signature_check.check_new(dies_on_the_second, gw.clock.now())
    assert await DocumentSignature.filter(case_id=number).count() == 0
    # after the "restart"
    assert await signature_check.drain(real, gw.clock.now()) == 4
    assert len(await verdicts(number)) == 3


async def test_the_export_holds_the_verdicts_and_the_erasure_removes_them(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    person = await gw.person("Jan Kowalski", email="jan@example.pl")
    await gw.mail(signed_mail(documents, "Do usunięcia"))
    await signature_check.drain(in_process(pki), gw.clock.now())
    exported = await rodo.export(person, channels=gw.services.channels)
    assert exported is not None
    [case] = exported["cases"]
    found = {f["filename"]: f["signatures"] for f in case["attachments"]}
    assert [(s["status"], s["signer"]) for s in found["wniosek.pdf"]] == [
        ("valid", "Jan Kowalski")]
    assert found["skan.pdf.p7s"][0]["signs_file"] == "skan.pdf"
    done = await rodo.erase(person, audit.Actor("test", "test"), gw.clock.now(),
                            channels=gw.services.channels, spool_dir=gw.settings.sent_mail_dir)
    assert done is not None
    assert await DocumentSignature.all().count() == 0


def test_every_result_reads_in_both_languages() -> None:
    zone = ZoneInfo("Europe/Warsaw")
    when = datetime(2026, 12, 3, 13, 5, tzinfo=UTC)
    line = DocumentSignature(signer="Jan Kowalski", signed_at=when, status="valid",
                             qualified=True, detail="")
    assert i18n.signature_line(line, "pl", zone) == (
        "Podpisany przez Jan Kowalski dnia 3 grudnia 2026, 14:05 — podpis ważny (kwalifikowany)")
    assert i18n.signature_line(line, "en", zone) == (
        "Signed by Jan Kowalski on 3 December 2026, 14:05 — valid signature (qualified)")
    cases = [("valid", ""), ("untrusted", "chain"), ("untrusted", "expired"),
             ("invalid", "changed"), ("invalid", "signature"), ("invalid", "partial"),
             ("unreadable", "malformed"), ("unreadable", "missing"), ("unreadable", "timeout")]
    for lang in ("pl", "en"):
        said = [i18n.signature_result(status, detail, False, lang) for status, detail in cases]
        assert len(set(said)) == len(cases) and all(said), said  # each its own words
        assert not any(code in text for text in said for code in ("chain", "malformed"))
    unsigned = DocumentSignature(signer="", signed_at=None, status="unreadable",
                                 detail="malformed", qualified=False)
    assert i18n.signature_line(unsigned, "pl", zone).startswith("Podpis — nie udało się")


async def test_the_background_part_verifies_what_came(gw: Gateway, pki: Pki,
                                                     documents: Documents) -> None:
    await gw.mail(signed_mail(documents, "W tle"))
    number = (await Case.get(subject="W tle")).number
    rounds: list[str] = []
    waiting = asyncio.Event()

    async def idle(seconds: float) -> None:  # the part has done all there is
        waiting.set()
        await asyncio.Event().wait()

    part = asyncio.ensure_future(signature_check.run(
        in_process(pki), gw.clock.now, lambda: rounds.append("beat"), idle))
    try:
        await asyncio.wait_for(waiting.wait(), 120)
    finally:
        part.cancel()
    assert len(await verdicts(number)) == 3 and rounds  # each round told the supervisor


async def test_the_gateway_runs_it_as_a_supervised_part(aiohttp_client: Any, settings: Any,
                                                        clock: Any, pki: Pki,
                                                        tmp_path: Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(pki.bundle)
    running = await aiohttp_client(create_app(
        settings.model_copy(update={"signature_trust_roots": str(bundle)}),
        clock=clock, run_workers=True, start_listeners=False))
    assert "signatures" in running.app[HEALTH].parts
    # a bundle that is not there stops the start: a typo must not make every
    # signature "untrusted" without a word
    with pytest.raises(FileNotFoundError):
        settings.model_copy(update={"signature_trust_roots": str(tmp_path / "nie.pem")}
                            ).signature_roots_pem()


# --- the review's faults (issue #20) ------------------------------------------------------

#: a signer's name as a hostile certificate may carry it: NUL and BEL (PostgreSQL's text
#: refuses NUL), a right-to-left override (it turns a page's line around)
HOSTILE_CN = "Jan\x00Kowalski\u202e"


@pytest.fixture(scope="module")
def hostile(pki: Pki) -> Party:
    return issue(_name(HOSTILE_CN, "Firma\x07 Testowa"), pki.intermediate, ca=False)


@pytest.fixture(scope="module")
def hostile_pdf(pki: Pki, hostile: Party) -> bytes:
    return signed_pdf(hostile, pki)


def test_text_from_a_certificate_is_printable_with_one_limit(pki: Pki, hostile_pdf: bytes
                                                             ) -> None:
    verdict = one(signatures.verify("wniosek.pdf", "application/pdf", hostile_pdf, pki.roots))
    assert (verdict.status, verdict.signer) == ("valid", "Jan Kowalski (Firma Testowa)")
    assert signatures.printable("Zażółć\tgęślą\u2028jaźń\x00\u2066\u200f") == "Zażółć gęślą jaźń"
    long = signatures.printable("Ą" * 1000)
    assert len(long) == signatures.TEXT_LIMIT and long.endswith("…")


async def test_a_hostile_signer_name_is_stored_and_shown_as_plain_text(
        gw: Gateway, pki: Pki, hostile_pdf: bytes) -> None:
    await gw.mail(signed_mail({"wniosek.pdf": ("pdf", hostile_pdf)}, "Wrogi"))
    number = (await Case.get(subject="Wrogi")).number
    # on PostgreSQL the NUL made every round fail: the part was stuck on this file
    assert await signature_check.drain(in_process(pki), gw.clock.now()) == 1
    assert await verdicts(number) == {
        "wniosek.pdf": ("pades", "valid", "", "Jan Kowalski (Firma Testowa)", False)}
    await staff_member(gw)
    client = await sign_in(gw, "urzedniczka@milanowek.example")
    html = await (await client.get(f"/panel/sprawy/{number}")).text()
    # the name is isolated from the verdict beside it, and no format character reaches
    # the page (an old row stored before the fix is cleaned when shown)
    assert "Podpisany przez <bdi>Jan Kowalski (Firma Testowa)</bdi> dnia" in html
    assert not any(c in html for c in ("\u202e", "\x00", "\x07"))
    await DocumentSignature.filter(case_id=number).update(signer="Zenon\u202e Obcy")
    html = await (await client.get(f"/panel/sprawy/{number}")).text()
    assert "<bdi>Zenon Obcy</bdi>" in html and "\u202e" not in html


async def test_a_verdict_that_cannot_be_stored_as_it_came_is_stored_unreadable(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    await gw.mail(signed_mail(documents, "Dziwne werdykty"))
    number = (await Case.get(subject="Dziwne werdykty")).number

    async def odd(filename: str, content_type: str, data: bytes, covered: bytes | None
                  ) -> list[Verdict]:
        # what a child gone wrong (or a future version) might answer
        return {"wniosek.pdf": [Verdict("pades", "valid", signer="Jan\x00Kowalski",
                                        signed_at="wczoraj")],
                "oswiadczenie.xml": [Verdict("xades" * 10, "valid")],
                "skan.pdf.p7s": [Verdict("cades", "bogus", detail="kaput")]}.get(filename, [])

    assert await signature_check.drain(odd, gw.clock.now()) == 4
    assert await verdicts(number) == {
        "wniosek.pdf": ("pades", "valid", "", "Jan Kowalski", False),
        "oswiadczenie.xml": ("xades", "unreadable", "malformed", "", False),
        "skan.pdf.p7s": ("cades", "unreadable", "malformed", "", False)}
    assert (await DocumentSignature.get(case_id=number, kind="pades")).signed_at is None


async def test_a_file_erased_while_it_is_verified_does_not_stop_the_round(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    await gw.mail(signed_mail(documents, "Usunięty w trakcie"))
    number = (await Case.get(subject="Usunięty w trakcie")).number
    real = in_process(pki)

    async def erasing(filename: str, content_type: str, data: bytes, covered: bytes | None
                      ) -> list[Verdict]:
        found = await real(filename, content_type, data, covered)
        if filename == "oswiadczenie.xml":  # erased (RODO) while the child worked on it
            await Attachment.filter(case_id=number, filename=filename).delete()
        return found

    assert await signature_check.drain(erasing, gw.clock.now()) == 4
    found = await verdicts(number)
    assert set(found) == {"wniosek.pdf", "skan.pdf.p7s"}
    assert found["wniosek.pdf"][:2] == ("pades", "valid")


@pytest.fixture(scope="module")
def expired(pki: Pki) -> Party:
    """A signer whose certificate ran out in 2021: what a resident's old card gives."""
    return issue(_name("Piotr Wygasły"), pki.intermediate, ca=False,
                 not_before=datetime(2020, 1, 1, tzinfo=UTC), days=366)


def test_a_signature_by_an_expired_certificate_is_untrusted_never_invalid(
        pki: Pki, expired: Party) -> None:
    xml = one(signatures.verify("wniosek.xml", "text/xml", signed_xml(expired, pki), pki.roots))
    assert (xml.status, xml.detail, xml.signer) == ("untrusted", "expired", "Piotr Wygasły")
    pdf = one(signatures.verify("wniosek.pdf", "application/pdf", signed_pdf(expired, pki),
                                pki.roots))
    assert (pdf.status, pdf.detail) == ("untrusted", "expired")
    # and a changed document signed with it is still "changed", not "expired"
    changed = tampered(signed_xml(expired, pki), "wydanie".encode(), "uchylen".encode())
    assert one(signatures.verify("wniosek.xml", "text/xml", changed, pki.roots)).detail == \
        "changed"
    for lang in ("pl", "en"):
        assert i18n.signature_result("untrusted", "expired", False, lang) != \
            i18n.signature_result("untrusted", "chain", False, lang)


def parallel_xml(first: Party, second: Party) -> bytes:
    """Two signers, each signing the same document (endesive's XPath transform leaves
    every ds:Signature out), the second signature then added beside the first: how a
    parallel (co-)signature is made."""
    one_signed = etree.fromstring(signed_xml(first, Pki(first, first, first, first, first)))
    other = etree.fromstring(signed_xml(second, Pki(second, second, second, second, second)))
    one_signed.append(other.find(f"{{{signatures.XMLDSIG}}}Signature"))
    return etree.tostring(one_signed, encoding="UTF-8", xml_declaration=True)


ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


def with_enveloped_transform(signed: bytes, party: Party) -> bytes:
    """endesive's signature made with the enveloped-signature transform (what signxml,
    xmlsec and several signing applications write) instead of its XPath filter — the
    same digest for a document that had no signature yet: the Transform swapped, then
    SignedInfo canonicalised (lxml's C14N 1.0) and signed again with the signer's key."""
    root = etree.fromstring(signed)
    ds = signatures.XMLDSIG
    signature = root.find(f"{{{ds}}}Signature")
    transform = signature.find(f"{{{ds}}}SignedInfo/{{{ds}}}Reference/{{{ds}}}Transforms/"
                               f"{{{ds}}}Transform")
    for child in list(transform):
        transform.remove(child)
    transform.set("Algorithm", ENVELOPED)
    alone = etree.fromstring(etree.tostring(signature))
    info = etree.tostring(alone.find(f"{{{ds}}}SignedInfo"), method="c14n")
    value = party.key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    signature.find(f"{{{ds}}}SignatureValue").text = base64.b64encode(value).decode()
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def test_parallel_signatures_with_the_enveloped_transform_are_each_verified(pki: Pki) -> None:
    first = with_enveloped_transform(signed_xml(pki.qualified, pki), pki.qualified)
    second = with_enveloped_transform(signed_xml(pki.plain, pki), pki.plain)
    assert one(signatures.verify("a.xml", "text/xml", first, pki.roots)).status == "valid"
    both = etree.fromstring(first)
    both.append(etree.fromstring(second).find(f"{{{signatures.XMLDSIG}}}Signature"))
    data = etree.tostring(both, encoding="UTF-8", xml_declaration=True)
    assert data.count(ENVELOPED.encode()) == 2
    found = signatures.verify("wniosek.xml", "text/xml", data, pki.roots)
    assert [(v.status, v.signer) for v in found] == [
        ("valid", "Jan Kowalski"), ("valid", "Anna Nowak (Firma Testowa)")]
    changed = tampered(data, "wydanie".encode(), "uchylen".encode())
    assert [(v.status, v.detail) for v in signatures.verify("wniosek.xml", "text/xml", changed,
                                                             pki.roots)] == [
        ("invalid", "changed"), ("invalid", "changed")]


def test_parallel_xades_signatures_are_each_verified(pki: Pki) -> None:
    data = parallel_xml(pki.qualified, pki.plain)
    assert data.count(b"</ds:SignatureValue>") == 2  # two signatures
    found = signatures.verify("wniosek.xml", "text/xml", data, pki.roots)
    assert [(v.status, v.signer, v.qualified) for v in found] == [
        ("valid", "Jan Kowalski", True), ("valid", "Anna Nowak (Firma Testowa)", False)]
    changed = tampered(data, "wydanie".encode(), "uchylen".encode())
    assert [(v.status, v.detail) for v in signatures.verify("wniosek.xml", "text/xml", changed,
                                                             pki.roots)] == [
        ("invalid", "changed"), ("invalid", "changed")]


def test_an_xml_signature_over_only_a_part_of_the_document_is_not_valid(pki: Pki) -> None:
    # enveloping: the signed document is the ds:Object the signature holds: it covers it
    alone = enveloping_xml(pki.qualified)
    assert one(signatures.verify("wniosek.xml", "text/xml", alone, pki.roots)).status == "valid"
    # the same signature put into a larger document: its reference names the Object, and
    # the words around it (what a clerk reads first) were never signed
    wrapped = ('<?xml version="1.0" encoding="UTF-8"?><wniosek><dopisek>Kwota: 1 000 000 zł'
               '</dopisek>').encode() + alone.split(b"?>", 1)[1] + b"</wniosek>"
    verdict = one(signatures.verify("wniosek.xml", "text/xml", wrapped, pki.roots))
    assert (verdict.status, verdict.detail, verdict.qualified) == ("invalid", "partial", False)
    for lang in ("pl", "en"):
        assert i18n.signature_result("invalid", "partial", False, lang) != \
            i18n.signature_result("invalid", "changed", False, lang)


async def test_the_child_gets_no_secrets_and_no_preexec_fn(
        pki: Pki, documents: Documents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMIL_SMTP_PASSWORD", "tajne-haslo")
    monkeypatch.setenv("PYTHONSTARTUP", "/nonexistent/startup.py")
    started: list[dict[str, Any]] = []
    real = asyncio.create_subprocess_exec

    async def watched(*args: Any, **kwargs: Any) -> Any:
        started.append({"args": args, **kwargs})
        return await real(*args, **kwargs)

    monkeypatch.setattr(signature_check.asyncio, "create_subprocess_exec", watched)
    verify = signature_check.child_verifier(pki.bundle)
    [verdict] = await verify("wniosek.pdf", "application/pdf", documents["wniosek.pdf"][1], None)
    assert (verdict.status, verdict.signer) == ("valid", "Jan Kowalski")
    [child] = started
    # preexec_fn is not safe in a process with threads (the subprocess module's docs);
    # the child bounds itself
    assert "preexec_fn" not in child
    assert "tajne-haslo" not in repr(child["env"]) and "EMIL_SMTP_PASSWORD" not in child["env"]
    assert set(child["env"]) <= {"PATH", "LC_ALL", "LANG"}


async def test_the_child_sets_its_own_limits(documents: Documents) -> None:
    """The child, started as the gateway starts it but with no limit from outside, bounds
    its own address space from its command line before it reads the request."""
    request = json.dumps({"filename": "wniosek.pdf", "content_type": "application/pdf",
                          "data": base64.b64encode(documents["wniosek.pdf"][1]).decode(),
                          "covered": None, "roots": None}).encode()

    async def run(memory: int) -> tuple[int | None, bytes]:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handlers.signatures", "--cpu-seconds", "30",
            "--memory-bytes", str(memory), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.defpath}, cwd=str(Path(signature_check.__file__).parent.parent))
        out, _ = await child.communicate(request)
        return child.returncode, out

    code, out = await run(2 * 1024 ** 3)
    assert code == 0 and json.loads(out)[0]["status"] == "untrusted"  # no roots given
    code, out = await run(64 * 1024 ** 2)  # too little to import pyHanko
    assert code != 0 and out == b""


@pytest.mark.skipif(not PG_URL, reason="ids committed out of order need PostgreSQL")
async def test_an_attachment_committed_late_is_not_passed_whatever_the_clocks_say(
        gw: Gateway, pki: Pki, documents: Documents) -> None:
    await gw.mail(signed_mail({"wniosek.pdf": documents["wniosek.pdf"]}, "Zegary"))
    number = (await Case.get(subject="Zegary")).number
    verify = in_process(pki)
    late = gw.clock.now() + timedelta(hours=1)  # any clock: the checker's is far ahead
    assert await signature_check.drain(verify, late) == 1
    pdf = documents["wniosek.pdf"][1]
    inserted, release = asyncio.Event(), asyncio.Event()

    async def slow_intake() -> None:  # takes its id first, commits last
        async with in_transaction():
            await Attachment.create(case_id=number, filename="pierwszy.pdf",
                                    content_type="application/pdf", size=len(pdf), data=pdf,
                                    created_at=gw.clock.now())
            inserted.set()
            await release.wait()

    intake = asyncio.ensure_future(slow_intake())
    await inserted.wait()
    # another instance, its clock two minutes behind, commits a higher id at once
    await Attachment.create(case_id=number, filename="drugi.pdf", content_type="application/pdf",
                            size=len(pdf), data=pdf,
                            created_at=gw.clock.now() - timedelta(minutes=2))
    await signature_check.drain(verify, late)
    release.set()
    await intake
    await signature_check.drain(verify, late)
    assert set(await verdicts(number)) == {"wniosek.pdf", "pierwszy.pdf", "drugi.pdf"}


async def test_a_child_that_answers_nonsense_gives_an_unreadable_verdict(
        documents: Documents, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that exits 0 but prints something else than verdicts (a library writing
    to stdout, a truncated answer) must not fail the round: it would fail again and again."""
    verify = signature_check.child_verifier(None)
    for answer in ("print('not json')", "print('[{\"status\": \"valid\"}]')", "print('{}')"):
        monkeypatch.setattr(signature_check, "child_command",
                            lambda limits, answer=answer: [sys.executable, "-c", answer])
        [verdict] = await verify("wniosek.pdf", "application/pdf", documents["wniosek.pdf"][1],
                                 None)
        assert (verdict.kind, verdict.status, verdict.detail) == ("pades", "unreadable",
                                                                  "malformed"), answer
