"""An SRU catalogue double: a small aiohttp app on loopback that gateway/sru.py talks real
HTTP to, serving the recorded MARCXML of tests/data/catalogue_pl.xml.

It answers SRU 1.2 searchRetrieve (`query`, `startRecord`, `maximumRecords`,
`recordSchema=marcxml`) by evaluating, on its own, the CQL shape the gateway sends:
clauses `<index> = "<phrase>"` or `<index> all "<words>"` joined by `and`, terms with
backslash escapes. It records every query it got, can wait `delay` seconds before
answering (a slow catalogue) and answers an SRU diagnostic for any other CQL.
"""

from __future__ import annotations

import asyncio
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pymarc
from aiohttp import web

FIXTURE = Path(__file__).parent.parent / "data" / "catalogue_pl.xml"
MARC_NS = "http://www.loc.gov/MARC21/slim"
SRW_NS = "http://www.loc.gov/zing/srw/"
#: which MARC fields each index looks at
INDEXES = {"dc.title": ("245",), "dc.creator": ("100", "700"), "dc.subject": ("650", "651"),
           "bath.isbn": ("020",), "cql.serverChoice": ("020", "100", "245", "650", "651")}
_CLAUSE = re.compile(r'^(\S+) (=|all) "((?:[^"\\]|\\.)*)"$')


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w.]+", " ", text.lower().replace("-", "")).split()


@dataclass
class SruDouble:
    delay: float = 0.0
    queries: list[str] = field(default_factory=list)
    records: list[tuple[bytes, pymarc.Record]] = field(default_factory=list)

    def __post_init__(self) -> None:
        tree = ET.parse(FIXTURE)
        for element in tree.getroot():
            raw = ET.tostring(element)
            collection = b'<collection xmlns="' + MARC_NS.encode() + b'">' + raw + b"</collection>"
            [record] = pymarc.parse_xml_to_array(io.BytesIO(collection))
            self.records.append((raw, record))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.search)
        return app

    def _text(self, record: pymarc.Record, index: str) -> list[str]:
        return _words(" ".join(f.value() for f in record.get_fields(*INDEXES[index])))

    def matches(self, record: pymarc.Record, cql: str) -> bool:
        for clause in re.split(r' and (?=(?:[^"]*"[^"]*")*[^"]*$)', cql):
            found = _CLAUSE.match(clause.strip())
            if not found or found.group(1) not in INDEXES:
                raise ValueError(clause)
            index, relation, term = found.groups()
            term = re.sub(r"\\(.)", r"\1", term)
            text = self._text(record, index)
            wanted = _words(term)
            if relation == "all" and not all(w in text for w in wanted):
                return False
            if relation == "=" and " ".join(wanted) not in " ".join(text):
                return False
        return True

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        self.queries.append(query)
        if self.delay:
            await asyncio.sleep(self.delay)
        start = int(request.query.get("startRecord", "1"))
        count = int(request.query.get("maximumRecords", "10"))
        try:
            hits = [raw for raw, record in self.records if self.matches(record, query)]
        except ValueError:
            return web.Response(content_type="text/xml", text=(
                f'<searchRetrieveResponse xmlns="{SRW_NS}"><version>1.2</version>'
                '<numberOfRecords>0</numberOfRecords><diagnostics><diagnostic '
                'xmlns="http://www.loc.gov/zing/srw/diagnostic/"><uri>info:srw/diagnostic/1/10'
                '</uri></diagnostic></diagnostics></searchRetrieveResponse>'))
        page = hits[start - 1:start - 1 + count]
        body = b"".join(
            b"<record><recordSchema>marcxml</recordSchema><recordPacking>xml</recordPacking>"
            b"<recordData>" + raw + b"</recordData><recordPosition>" + str(start + n).encode()
            + b"</recordPosition></record>" for n, raw in enumerate(page))
        xml = (b'<?xml version="1.0" encoding="UTF-8"?><searchRetrieveResponse xmlns="'
               + SRW_NS.encode() + b'"><version>1.2</version><numberOfRecords>'
               + str(len(hits)).encode() + b"</numberOfRecords><records>" + body
               + b"</records></searchRetrieveResponse>")
        return web.Response(body=xml, content_type="text/xml", charset="utf-8")
