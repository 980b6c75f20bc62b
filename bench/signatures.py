"""What verifying a signed file costs (issue #20), against a bare baseline measured in
the same run: reading the file's SHA-256 (what storing it costs at the least).

Printed: milliseconds per file and the ratio to the baseline, for a PAdES PDF and a
XAdES XML verified in this process, and for the PDF in the child process the gateway
uses (`python -m handlers.signatures`, which pays for starting Python and importing
pyHanko each time). Medians of three runs; the machine is shared, so read the ratios.

Run: `python -m bench.signatures`.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from collections.abc import Callable

from bench.common import machine
from handlers import signature_check, signatures
from tests.test_signatures import (
    Pki,
    _name,
    issue,
    signed_pdf,
    signed_xml,
)

ROUNDS = 3
FILES = 20


def pki() -> Pki:
    root = issue(_name("Bench Root"), None, ca=True)
    intermediate = issue(_name("Bench CA"), root, ca=True)
    other = issue(_name("Other Root"), None, ca=True)
    return Pki(root=root, intermediate=intermediate,
               qualified=issue(_name("Jan Kowalski"), intermediate, ca=False, qualified=True),
               plain=issue(_name("Anna Nowak"), intermediate, ca=False),
               stranger=issue(_name("Zenon Obcy"), other, ca=False))


def per_file(work: Callable[[], object], files: int = FILES) -> float:
    """Median over ROUNDS of the seconds one file takes."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(files):
            work()
        times.append((time.perf_counter() - start) / files)
    return statistics.median(times)


def main() -> None:
    print(f"machine: {machine()}")
    keys = pki()
    roots = keys.roots
    pdf, xml = signed_pdf(keys.qualified, keys), signed_xml(keys.qualified, keys)
    baseline = per_file(lambda: hashlib.sha256(pdf).digest(), files=2000)
    print(f"baseline (SHA-256 of the {len(pdf)}-byte PDF): {baseline * 1e6:.1f} µs")
    for name, work in (
            ("PAdES, in process", lambda: signatures.verify("a.pdf", "", pdf, roots)),
            ("XAdES, in process", lambda: signatures.verify("a.xml", "", xml, roots))):
        took = per_file(work)
        print(f"{name}: {took * 1e3:.1f} ms per file, {took / baseline:,.0f}× the baseline")
    child = signature_check.child_verifier(keys.bundle)
    took = per_file(lambda: asyncio.run(child("a.pdf", "", pdf, None)), files=3)
    print(f"PAdES, child process: {took * 1e3:.1f} ms per file, "
          f"{took / baseline:,.0f}× the baseline")


if __name__ == "__main__":
    main()
