"""The library catalogue's SRU client (handlers/catalogue.Catalogue): searchRetrieve over
HTTP GET, records asked for as MARCXML and read with pymarc.

SRU 1.2 (Library of Congress, "SRU Version 1.2 Specifications"): parameters `version`,
`operation=searchRetrieve`, `query` (CQL), `startRecord` (1-based), `maximumRecords`,
`recordSchema=marcxml`, `recordPacking=xml`; the answer is a `searchRetrieveResponse`
with `numberOfRecords` and `records/record/recordData`, or `diagnostics`. SRU 2.0 keeps
these names in its own namespace, so both are read by local name.

What a record shows (MARC 21 bibliographic, holdings and the local fields the systems
used in Poland fill):
- title: 245 $a $b; author: 100 $a, else 110/111 $a, else 245 $c;
- year: 264 $c, else 260 $c (the first four digits), else 008/07-10;
- call number: 852 $h $i (MARC holdings embedded in the record), else 949 $a (the local
  copy field of MAK+ and SOWA exports), else 952 $o (Koha's item field);
- availability: Koha's 952 — $q (the date a loaned copy is due) on every copy means
  "on loan", a copy without it "available"; other records say nothing, and neither do we;
- subjects: 650 and 651 ($a with its $x $y $z subdivisions, joined with " — ").
MARCXML is UTF-8 by definition; MARC-8 only occurs in ISO 2709 records, which SRU
servers do not send as marcxml.
"""

from __future__ import annotations

import asyncio
import io
import re
import xml.etree.ElementTree as ET

import aiohttp
import pymarc

from handlers.catalogue import CatalogueError, Found, Record

MARC_NS = "http://www.loc.gov/MARC21/slim"


class SruCatalogue:
    def __init__(self, url: str, timeout: float = 4.0, version: str = "1.2") -> None:
        self.url = url
        self.timeout = timeout
        self.version = version

    async def search(self, cql: str, start: int, count: int) -> Found:
        params = {"version": self.version, "operation": "searchRetrieve", "query": cql,
                  "startRecord": str(start), "maximumRecords": str(count),
                  "recordSchema": "marcxml", "recordPacking": "xml"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self.url, params=params) as resp:
                if resp.status != 200:
                    raise CatalogueError(f"HTTP {resp.status}")
                body = await resp.read()
        # parsing a page of records is CPU work: off the event loop
        return await asyncio.to_thread(parse_response, body)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_response(body: bytes) -> Found:
    """A searchRetrieveResponse's hit count and records (SRU 1.2 or 2.0)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise CatalogueError("not XML") from error
    total = None
    records: list[Record] = []
    for element in root.iter():
        name = _local(element.tag)
        if name == "numberOfRecords" and total is None:
            total = int((element.text or "0").strip() or 0)
        elif name == "diagnostics" and len(element):
            raise CatalogueError("SRU diagnostic")
        elif name == "recordData":
            marc = next((e for e in element.iter() if _local(e.tag) == "record"), None)
            if marc is not None:
                records += [read(r) for r in _marc(marc) if r is not None]
    if total is None:
        raise CatalogueError("no numberOfRecords")
    return Found(total, records)


def _marc(element: ET.Element) -> list[pymarc.Record | None]:
    if element.tag != f"{{{MARC_NS}}}record":  # some servers leave the namespace out
        for e in element.iter():
            e.tag = f"{{{MARC_NS}}}{_local(e.tag)}"
    collection = ET.Element(f"{{{MARC_NS}}}collection")
    collection.append(element)
    return pymarc.parse_xml_to_array(io.BytesIO(ET.tostring(collection)))


def _clean(text: str | None) -> str | None:
    text = (text or "").strip().rstrip(" /:;,.=").strip()
    return text or None


def _first(record: pymarc.Record, tags: tuple[str, ...], codes: tuple[str, ...]
           ) -> str | None:
    for tag in tags:
        for f in record.get_fields(tag):
            text = _clean(" ".join(v.strip() for v in f.get_subfields(*codes)))
            if text:
                return text
    return None


def read(record: pymarc.Record) -> Record:
    """The parts of a MARC record a reader needs (the module docstring says which fields)."""
    title = _first(record, ("245",), ("a", "b")) or "—"
    author = (_first(record, ("100", "110", "111"), ("a",))
              or _first(record, ("245",), ("c",)))
    year = None
    for tag in ("264", "260"):
        for f in record.get_fields(tag):
            match = re.search(r"\d{4}", " ".join(f.get_subfields("c")))
            if match and year is None:
                year = match.group()
    fixed = record.get_fields("008")
    if year is None and fixed and (data := fixed[0].data or "")[7:11].isdigit():
        year = data[7:11]
    call_number = (_first(record, ("852",), ("h", "i")) or _first(record, ("949",), ("a",))
                   or _first(record, ("952",), ("o",)))
    items = record.get_fields("952")
    availability = None
    if items:
        on_loan = all(f.get_subfields("q") for f in items)
        availability = "on_loan" if on_loan else "available"
    subjects: list[str] = []
    for f in record.get_fields("650", "651"):
        parts = (v.strip().rstrip(" ,;:").strip() for v in f.get_subfields("a", "x", "y", "z"))
        heading = " — ".join(filter(None, parts))
        if heading and heading not in subjects:
            subjects.append(heading)
    return Record(title, author, year, call_number, availability, tuple(subjects))
