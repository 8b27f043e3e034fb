"""Property tests for the CDR pipeline's parsers: the API cursor, YYYY-MM months and the
spool's line reader (whole lines back, in order, a torn tail left out)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cdr_partitions import PartitionError, add_months, parse_month
from services.cdr_routes import decode_cursor, encode_cursor
from services.cdr_spool import SpoolFile, read_lines

aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(started=aware, call_id=st.text(min_size=1, max_size=80), leg=st.sampled_from(["a", "b"]))
def test_cursor_round_trips(started, call_id, leg) -> None:
    token = encode_cursor({"started_at": started, "call_id": call_id, "leg": leg})
    assert decode_cursor(token) == (started, call_id, leg)
    assert token.isascii() and "=" not in token  # safe in a query string as it is


@given(st.text(max_size=60))
def test_any_other_cursor_is_a_400_never_a_traceback(text) -> None:
    try:
        decode_cursor(text)
    except HTTPException as exc:
        assert exc.status_code == 400


@given(y=st.integers(1000, 9999), m=st.integers(1, 12))
def test_months_parse(y, m) -> None:
    assert parse_month(f"{y:04d}-{m:02d}") == date(y, m, 1)


@given(st.text(max_size=12))
def test_a_bad_month_says_so(text) -> None:
    try:
        parse_month(text)
    except PartitionError as exc:
        assert "month must be YYYY-MM" in str(exc)


@given(start=st.dates(min_value=date(1900, 1, 1), max_value=date(2900, 1, 1)), n=st.integers(-2400, 2400))
def test_add_months_counts_calendar_months(start, n) -> None:
    got = add_months(start, n)
    assert got.day == 1 and (got.year * 12 + got.month) - (start.year * 12 + start.month) == n


line_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                    min_size=1, max_size=40).filter(lambda s: s.strip() == s)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_text, max_size=30), torn=st.text(max_size=20).filter(lambda s: "\n" not in s),
       chunk=st.integers(1, 7))  # fmt: skip
def test_spool_reader_gives_back_whole_lines_in_order(lines, torn, chunk) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.spool"
        path.write_bytes("".join(x + "\n" for x in lines).encode() + torn.encode())
        fd = os.open(path, os.O_RDONLY)
        f = SpoolFile(path, fd)
        got: list[str] = []
        while True:
            part, f.offset = read_lines(f, chunk)
            assert len(part) <= chunk
            got += part
            if not part:
                break
        f.remove()
    assert got == lines


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-01", "2026/01", ""])
def test_months_refused(bad) -> None:
    with pytest.raises(PartitionError):
        parse_month(bad)
