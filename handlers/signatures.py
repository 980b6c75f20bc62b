"""Verifying the signatures a file carries (issue #20): bytes + name + trust roots in,
a list of verdicts out. Pure, synchronous CPU work with no I/O of its own.

- PAdES (a signed PDF): pyHanko validates each embedded signature — the digest over the
  signed byte ranges, the signature over it, what changed in later revisions.
- XAdES (a signed XML document: the trusted profile's and most qualified signers'
  output): signxml checks the references and the signature value, with a parser that
  refuses DTDs and entities (no XML bomb, no external fetch); each parallel signature
  gets its own verdict, and one whose references leave part of the document unsigned
  is "invalid" (detail "partial").
- CAdES (a `.p7s`/`.sig` over another file of the case, or a `.p7m` holding its
  content): pyHanko's CMS validation.

Trust is one question for all three: does the signer's chain end at a root of
`EMIL_SIGNATURE_TRUST_ROOTS` (pyhanko-certvalidator, no fetching: revocation is not
checked, and the README says so). No roots configured: nothing is trusted. A
certificate that has expired makes a signature "untrusted" (detail "expired"), never
"invalid": the document did not change. Every text taken from a certificate goes
through `printable` (no control or format character, one length limit).

Run as `python -m handlers.signatures` it reads one request (JSON) on stdin and writes
the verdicts (JSON) on stdout: handlers/signature_check.py runs it in a child process
with a time and memory limit, so that a hostile PDF costs that child, not the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import re
import resource
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

PADES, XADES, CADES = "pades", "xades", "cades"
VALID, INVALID, UNTRUSTED, UNREADABLE = "valid", "invalid", "untrusted", "unreadable"

#: why a signature is not valid, as codes the pages put in words (handlers/i18n.py)
CHANGED = "changed"  # the signed bytes differ from what was signed
BAD_SIGNATURE = "signature"  # the signature does not match the signer's certificate
CHAIN = "chain"  # the chain does not end at a trusted root
MALFORMED = "malformed"  # the file cannot be read as what it says it is
MISSING = "missing"  # a detached signature whose file is not in the case
TIMEOUT = "timeout"  # verification took longer than allowed (a hostile file?)
EXPIRED = "expired"  # valid maths, but the signer's certificate is no longer valid
PARTIAL = "partial"  # valid maths over only a part of the document
KINDS = (PADES, XADES, CADES)
STATUSES = (VALID, INVALID, UNTRUSTED, UNREADABLE)
DETAILS = ("", CHANGED, BAD_SIGNATURE, CHAIN, MALFORMED, MISSING, TIMEOUT, EXPIRED, PARTIAL)

#: the longest text kept from a certificate (store.models.DocumentSignature.signer's length)
TEXT_LIMIT = 300
#: Unicode categories dropped from a certificate's text: format characters (the bidi
#: overrides and isolates, zero-width characters: they can make "Jan Kowalski — podpis
#: nieważny" read as valid on a page), surrogates, private use, unassigned
_DROPPED = frozenset({"Cf", "Cs", "Co", "Cn"})
#: categories read as a space: controls (NUL breaks PostgreSQL's text type), line and
#: paragraph separators, and every other space
_SPACES = frozenset({"Cc", "Zl", "Zp", "Zs"})

#: ETSI EN 319 412-5 §4.2.1 / RFC 3739: the certificate extension QCStatements
#: (id-pe-qcStatements 1.3.6.1.5.5.7.1.3) holding the statement QcCompliance
#: (id-etsi-qcs-QcCompliance 0.4.0.1862.1.1): the issuer declares the certificate a
#: qualified certificate under eIDAS (Regulation 910/2014, annex I)
QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"
QC_COMPLIANCE = "0.4.0.1862.1.1"

_PDF_NAMES = (".pdf",)
_XML_NAMES = (".xml", ".xades")
_CMS_NAMES = (".p7s", ".p7m", ".sig", ".p7")
_CMS_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature",
              "application/pkcs7-mime", "application/x-pkcs7-mime")
#: the file-name endings a detached signature adds to the file it covers
_DETACHED_SUFFIXES = (".p7s", ".sig", ".p7")
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"


@dataclass(frozen=True)
class Verdict:
    """One signature's result, as stored (store.models.DocumentSignature)."""

    kind: str
    status: str
    signer: str = ""
    signed_at: str | None = None  # ISO 8601, UTC
    qualified: bool = False
    detail: str = ""

    @classmethod
    def of(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{k: data[k] for k in ("kind", "status", "signer", "signed_at",
                                           "qualified", "detail") if k in data})


def kind_of(filename: str, content_type: str, head: bytes = b"") -> str | None:
    """Which signature a file may carry, by its name, its type and its first bytes
    (a mail client names files as it likes; `head` is the start of the file, if known)."""
    name, ctype = filename.lower(), content_type.lower().split(";")[0].strip()
    if name.endswith(_PDF_NAMES) or ctype == "application/pdf" or head.startswith(b"%PDF-"):
        return PADES
    if name.endswith(_CMS_NAMES) or ctype in _CMS_TYPES:
        return CADES
    if name.endswith(_XML_NAMES) or ctype in ("application/xml", "text/xml") \
            or head.lstrip().startswith(b"<?xml"):
        return XADES
    return None


def covered_name(filename: str) -> str | None:
    """The file a detached signature names by its own name: `wniosek.pdf.p7s` covers
    `wniosek.pdf` (how Polish signing applications save a detached signature)."""
    lower = filename.lower()
    for suffix in _DETACHED_SUFFIXES:
        if lower.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


# --- certificates -----------------------------------------------------------------------


def load_roots(pem: bytes | str | None) -> list[Any]:
    """The trust roots of a PEM bundle (asn1crypto certificates); none for nothing."""
    from asn1crypto import pem as asn1_pem  # type: ignore[import-untyped]
    from asn1crypto import x509

    if not pem:
        return []
    data = pem.encode() if isinstance(pem, str) else pem
    return [x509.Certificate.load(der) for kind, _, der in asn1_pem.unarmor(data, multiple=True)
            if kind == "CERTIFICATE"]


def printable(text: object, limit: int = TEXT_LIMIT) -> str:
    """Any text taken from a certificate (or from a child's answer about one) as text a
    page, a database and a person can take: NFC, no control or format character, one
    space between words, at most `limit` characters. A certificate is the signer's own
    bytes: its name may hold NUL (PostgreSQL refuses it, and the attachment would be
    verified again forever) or U+202E (the page would read backwards)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if isinstance(text, (list, tuple)):
        text = " ".join(str(part) for part in text)
    kept = []
    for char in unicodedata.normalize("NFC", "" if text is None else str(text)):
        category = unicodedata.category(char)
        if category in _SPACES:
            kept.append(" ")
        elif category not in _DROPPED:
            kept.append(char)
    clean = " ".join("".join(kept).split())
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


def signer_name(cert: Any) -> str:
    """"Jan Kowalski (Urząd Miasta)": the subject's common name, and its organisation,
    as printable text."""
    native = cert.subject.native
    name = printable(native.get("common_name") or native.get("surname") or "")
    organisation = printable(native.get("organization_name") or "")
    if organisation and organisation != name:
        return printable(f"{name} ({organisation})" if name else organisation)
    return name


def is_qualified(cert: Any) -> bool:
    """True if the certificate declares QcCompliance in its QCStatements extension."""
    from asn1crypto import core

    class QcStatement(core.Sequence):
        _fields = [("statement_id", core.ObjectIdentifier),
                   ("statement_info", core.Any, {"optional": True})]

    class QcStatements(core.SequenceOf):
        _child_spec = QcStatement

    for extension in cert["tbs_certificate"]["extensions"] or []:
        if extension["extn_id"].dotted != QC_STATEMENTS:
            continue
        try:
            statements = QcStatements.load(extension["extn_value"].contents)
            return any(s["statement_id"].dotted == QC_COMPLIANCE for s in statements)
        except (ValueError, TypeError):
            return False
    return False


def _context(roots: Sequence[Any], others: Sequence[Any] = ()) -> Any:
    from pyhanko_certvalidator import ValidationContext

    # trust_roots=[] (not None): None would mean the system's TLS roots
    return ValidationContext(trust_roots=list(roots), other_certs=list(others),
                             allow_fetching=False, revocation_mode="soft-fail")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _status_verdict(kind: str, status: Any) -> Verdict:
    """A pyHanko status (PDF or CMS) as a verdict."""
    cert = status.signing_cert
    found = Verdict(kind=kind, status=VALID, signer=signer_name(cert),
                    signed_at=_iso(status.signer_reported_dt))
    if not status.intact:
        return replace(found, status=INVALID, detail=CHANGED)
    if not status.valid:
        return replace(found, status=INVALID, detail=BAD_SIGNATURE)
    if getattr(status, "docmdp_ok", True) is False:
        # a later revision changed the document in a way its signature does not allow
        return replace(found, status=INVALID, detail=CHANGED)
    if not status.trusted:
        return replace(found, status=UNTRUSTED, detail=EXPIRED if _expired(cert) else CHAIN)
    return replace(found, qualified=is_qualified(cert))


# --- PAdES ------------------------------------------------------------------------------


def verify_pdf(data: bytes, roots: Sequence[Any]) -> list[Verdict]:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_signatures)
    except Exception:  # noqa: BLE001 - any parser failure is "we cannot read it"
        log.info("a PDF could not be read", exc_info=True)
        # said only of a file that shows a signature: of a damaged scan there is nothing
        # to say about signatures
        return [Verdict(kind=PADES, status=UNREADABLE, detail=MALFORMED)] \
            if b"/ByteRange" in data else []
    verdicts = []
    for signature in embedded:
        try:
            status = asyncio.run(async_validate_pdf_signature(signature, _context(roots)))
            verdicts.append(_status_verdict(PADES, status))
        except Exception:  # noqa: BLE001 - one unreadable signature, the others still count
            log.info("a PDF signature could not be validated", exc_info=True)
            verdicts.append(Verdict(kind=PADES, status=UNREADABLE, detail=MALFORMED))
    return verdicts


# --- CAdES ------------------------------------------------------------------------------


def _cms(data: bytes) -> Any:
    """A CMS ContentInfo from DER, PEM or bare base64 (signing tools write all three)."""
    from asn1crypto import cms
    from asn1crypto import pem as asn1_pem

    if asn1_pem.detect(data):
        _, _, data = asn1_pem.unarmor(data)
    elif not data.startswith(b"\x30"):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("neither DER, PEM nor base64") from None
    info = cms.ContentInfo.load(data, strict=False)
    if info["content_type"].native != "signed_data":
        raise ValueError("not SignedData")
    return info["content"]


def verify_cms(data: bytes, covered: bytes | None, roots: Sequence[Any]) -> list[Verdict]:
    """A detached signature over `covered`, or one holding its content (`.p7m`)."""
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms

    try:
        signed = _cms(data)
        signed.native  # parse it all now: asn1crypto parses lazily  # noqa: B018
    except Exception:  # noqa: BLE001 - any parser failure is "we cannot read it"
        return [Verdict(kind=CADES, status=UNREADABLE, detail=MALFORMED)]
    content = signed["encap_content_info"]["content"].native
    if content is None and covered is None:
        return [Verdict(kind=CADES, status=UNREADABLE, detail=MISSING)]
    payload = covered if content is None else signed["encap_content_info"]
    try:
        status = asyncio.run(async_validate_detached_cms(
            payload, signed, signer_validation_context=_context(roots)))
    except Exception:  # noqa: BLE001
        log.info("a CMS signature could not be validated", exc_info=True)
        return [Verdict(kind=CADES, status=UNREADABLE, detail=MALFORMED)]
    return [_status_verdict(CADES, status)]


# --- XAdES ------------------------------------------------------------------------------

#: XMLDSig §6.6.3's XPath filter that drops every signature: what endesive and several
#: Polish signing applications write instead of the enveloped-signature transform
_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
_NO_SIGNATURE_XPATH = "not(ancestor-or-self::ds:Signature)"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


def _xml_parser() -> Any:
    from lxml import etree  # type: ignore[import-untyped]

    # defusedxml's rules by hand: no DTD loaded, no entity expanded, nothing fetched,
    # libxml2's own limits on depth and size left on (huge_tree off)
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=False)


def _top_signatures(root: Any) -> list[Any]:
    """The document's own signatures, in document order: every ds:Signature not inside
    another one (one inside is a countersignature: it signs the signature, not the
    document). Parallel signatures (co-signers of one document) are all here."""
    return [element for element in root.iter(f"{{{XMLDSIG}}}Signature")
            if not any(a.tag == f"{{{XMLDSIG}}}Signature" for a in element.iterancestors())]


def _verifier(index: int, parallel: bool = False) -> Any:
    """signxml's XAdES verifier for the document's `index`-th signature; `parallel`: the
    enveloped-signature transform removes every signature of the document, not only its
    own (see _verify_xml_signature)."""
    from signxml.verifier import _remove_sig
    from signxml.xades import XAdESVerifier

    class Verifier(XAdESVerifier):
        def _get_signature(self, root: Any) -> Any:
            # signxml takes the first ds:Signature; a parallel signature is another one.
            # Called on the document and on each copy signxml makes of it: the same
            # index finds the same signature in each
            found = _top_signatures(root)
            if index >= len(found):
                raise ValueError("no such signature")
            return found[index]

        def _apply_transforms(self, payload: Any, *, transforms_node: Any,
                              signature: Any) -> Any:
            # signxml skips an XPath transform it does not know; this one (and only this
            # one, written exactly so) means "the document without any ds:Signature":
            # every signature goes, not just this one — a parallel signature added later
            # was not there when this one was made (XMLDSig §6.6.3; endesive and Polish
            # signing applications write it for that reason). The enveloped-signature
            # transform does so only when `parallel`; otherwise it is signxml's (XMLDSig
            # §6.6.4: its own signature only)
            for transform in ([] if transforms_node is None
                              else self._findall(transforms_node, "Transform")):
                expression = transform.find(f"{{{XMLDSIG}}}XPath")
                if (transform.get("Algorithm") == _XPATH and expression is not None
                        and " ".join((expression.text or "").split()) == _NO_SIGNATURE_XPATH) \
                        or (parallel and transform.get("Algorithm") == _ENVELOPED):
                    document = signature.getroottree().getroot()
                    for other in _top_signatures(document):
                        if other is not document:
                            _remove_sig(other, idempotent=True)
            return super()._apply_transforms(payload, transforms_node=transforms_node,
                                             signature=signature)

    return Verifier()


#: a Reference's Type naming XAdES' SignedProperties (any XAdES version): it signs the
#: signing time and certificate, not the document
_SIGNED_PROPERTIES = "#SignedProperties"


def _covers_document(root: Any, signature: Any) -> bool:
    """Whether the signature's references cover everything a reader of the file sees: a
    reference to the whole document (URI "" or the root's own Id), or, for an enveloping
    signature (the root is the ds:Signature), to every ds:Object that holds content.
    A reference to one element only leaves the rest of the file unsigned — a clerk
    would read words nobody signed (XML signature wrapping)."""
    uris = {reference.get("URI") for reference in
            signature.iterfind(f"{{{XMLDSIG}}}SignedInfo/{{{XMLDSIG}}}Reference")
            if not (reference.get("Type") or "").endswith(_SIGNED_PROPERTIES)}
    if "" in uris:
        return True
    if signature is not root:
        ids = [root.get(name) for name in ("Id", "ID", "id") if root.get(name)]
        return any(f"#{value}" in uris for value in ids)
    objects = [o for o in signature.iterfind(f"{{{XMLDSIG}}}Object")
               if not (len(o) == 1 and str(o[0].tag).endswith("}QualifyingProperties"))]
    return bool(objects) and all(
        any(f"#{o.get(name)}" in uris for name in ("Id", "ID", "id") if o.get(name))
        for o in objects)


def _expired(cert: Any) -> bool:
    return bool(cert["tbs_certificate"]["validity"]["not_after"].native < datetime.now(UTC))


def _signing_time(root: Any) -> str | None:
    found = root.find(f".//{{{XADES_NS}}}SigningTime")
    if found is None:
        found = root.find(".//{http://uri.etsi.org/01903/v1.1.1#}SigningTime")
    if found is None or not (found.text or "").strip():
        return None
    try:
        moment = datetime.fromisoformat(found.text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return _iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def verify_xml(data: bytes, roots: Sequence[Any]) -> list[Verdict]:
    """A verdict for each of the document's own signatures (parallel co-signers each
    get theirs)."""
    from lxml import etree

    if re.search(rb"<!DOCTYPE|<!ENTITY", data[:65536], re.IGNORECASE):
        # no signed document needs a DTD; an entity bomb is refused before parsing (and
        # said of only if it claims a signature: an XHTML file is no signed document)
        return [Verdict(kind=XADES, status=UNREADABLE, detail=MALFORMED)] \
            if XMLDSIG.encode() in data else []
    try:
        root = etree.fromstring(data, parser=_xml_parser())
    except etree.XMLSyntaxError:
        return [Verdict(kind=XADES, status=UNREADABLE, detail=MALFORMED)] \
            if XMLDSIG.encode() in data else []
    # plain XML has none: nothing to say about it
    return [_verify_xml_signature(data, root, index, signature, roots)
            for index, signature in enumerate(_top_signatures(root))]


def _verify_xml_signature(data: bytes, root: Any, index: int, signature: Any,
                          roots: Sequence[Any]) -> Verdict:
    from asn1crypto import x509
    from pyhanko_certvalidator import CertificateValidator
    from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature
    from signxml.xades import XAdESSignatureConfiguration

    certs = []
    for element in signature.iterfind(f"{{{XMLDSIG}}}KeyInfo//{{{XMLDSIG}}}X509Certificate"):
        try:
            certs.append(x509.Certificate.load(base64.b64decode("".join((element.text or
                                                                         "").split()))))
        except (binascii.Error, ValueError):
            continue
    # the signer's own certificate first: a CA certificate in KeyInfo signs nothing here
    certs.sort(key=lambda c: bool(c.ca))
    if not certs:
        return Verdict(kind=XADES, status=UNREADABLE, detail=MALFORMED)
    signed_at = _signing_time(signature)
    for cert in certs:
        found = Verdict(kind=XADES, status=VALID, signer=signer_name(cert), signed_at=signed_at)
        pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(cert.dump()).decode() + \
              "-----END CERTIFICATE-----\n"
        # the maths are checked at a moment the certificate was valid: whether it is
        # valid now (expired, revoked, unknown issuer) is the trust question below, and
        # an expired certificate does not make a document "changed"
        config = XAdESSignatureConfiguration(
            expect_references=True,
            verification_time=cert["tbs_certificate"]["validity"]["not_before"].native)
        try:
            try:
                _verifier(index).verify(data, x509_cert=pem, expect_config=config,
                                        parser=_xml_parser())
            except InvalidDigest:
                if len(_top_signatures(root)) < 2:
                    raise
                # parallel signatures made with the enveloped-signature transform: each
                # signer signed the document before the other's signature was added.
                # XMLDSig §6.6.4 removes only the transform's own signature (that reading
                # came first: a later signer may have signed the earlier signature too);
                # then the document without every signature. Either match is the
                # document its signer saw; what differs lies only inside ds:Signature
                _verifier(index, parallel=True).verify(
                    data, x509_cert=pem, expect_config=config, parser=_xml_parser())
        except InvalidDigest:
            return replace(found, status=INVALID, detail=CHANGED)
        except InvalidCertificate:
            # a certificate signxml will not use (it subclasses InvalidSignature: caught
            # first, so it never reads as "the signature does not match")
            log.info("an XAdES certificate was refused", exc_info=True)
            return replace(found, status=UNREADABLE, detail=MALFORMED)
        except InvalidSignature:
            continue  # not this certificate's signature: try the next one
        except Exception:  # noqa: BLE001 - malformed or unsupported: unreadable
            log.info("an XAdES signature could not be verified", exc_info=True)
            return replace(found, status=UNREADABLE, detail=MALFORMED)
        if not _covers_document(root, signature):
            return replace(found, status=INVALID, detail=PARTIAL)
        try:
            asyncio.run(CertificateValidator(
                cert, intermediate_certs=[c for c in certs if c is not cert],
                validation_context=_context(roots)).async_validate_usage(set()))
        except Exception:  # noqa: BLE001 - any failure of the chain: not trusted
            return replace(found, status=UNTRUSTED, detail=EXPIRED if _expired(cert) else CHAIN)
        return replace(found, qualified=is_qualified(cert))
    return Verdict(kind=XADES, status=INVALID, detail=BAD_SIGNATURE, signer=signer_name(certs[0]),
                   signed_at=signed_at)


# --- one entry point --------------------------------------------------------------------


def verify(filename: str, content_type: str, data: bytes, roots: Sequence[Any],
           covered: bytes | None = None) -> list[Verdict]:
    """Every signature the file carries (none for a file that carries none). `covered`:
    the file a detached signature names, when it is one."""
    kind = kind_of(filename, content_type, data[:64])
    if kind == PADES:
        return verify_pdf(data, roots)
    if kind == XADES:
        return verify_xml(data, roots)
    if kind == CADES:
        return verify_cms(data, covered, roots)
    return []


def bound(cpu_seconds: int, memory_bytes: int) -> None:
    """The child's own limits, set first thing in its own main: CPU seconds (the kernel
    ends it with SIGXCPU/SIGKILL) and address space (an allocation past it fails). Set
    here rather than in a `preexec_fn`, which the subprocess module documents as unsafe
    in a process with threads — the gateway has them (aiosqlite, asyncio.to_thread)."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def main(argv: Sequence[str] | None = None) -> None:
    """The child process's side: its limits from the command line, then one request on
    stdin, its verdicts on stdout."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m handlers.signatures")
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--memory-bytes", type=int, required=True)
    limits = parser.parse_args(argv)
    bound(limits.cpu_seconds, limits.memory_bytes)
    request = json.load(sys.stdin)
    covered = request.get("covered")
    verdicts = verify(request["filename"], request["content_type"],
                      base64.b64decode(request["data"]), load_roots(request.get("roots")),
                      base64.b64decode(covered) if covered is not None else None)
    json.dump([asdict(v) for v in verdicts], sys.stdout)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    main()
