"""Hostile headers, generated: parsing never crashes and never drops a valid address.

The Gmail connector parses raw headers (Graph hands us parsed recipients); whatever reaches it
— broken encodings, malformed entries, empty or huge recipient lists, dates with no or impossible
zones — must yield every well-formed address and a sane time, never an exception that would stop
a mailbox's sync.
"""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.google.gmail import parse_addresses, parse_date, parse_message
from core.addresses import canonical_address

local_part = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
domain = st.builds(lambda a, b: f"{a}.{b}", label, st.sampled_from(["com", "org", "de", "jp"]))
address = st.builds(lambda lp, d: f"{lp}@{d}", local_part, domain)
plain_name = st.text(string.ascii_letters + " ", min_size=0, max_size=15).map(str.strip)
garbage = st.sampled_from(
    [
        "undisclosed-recipients:;",
        "bob@",
        "<@nowhere>",
        "Broken <broken@example.com",
        '"Unterminated <q@example.com>',
        "not an address",
        "=?UTF-8?B?!!notbase64?=",
        "=?unknown-8bit?Q?caf=E9?=",
        "",
        ",,,",
    ]
)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, str]:
    addr = draw(address)
    name = draw(plain_name)
    style = draw(st.sampled_from(["bare", "angle", "quoted", "encoded"]))
    if style == "bare" or not name:
        return addr, addr
    if style == "angle":
        return f"{name} <{addr}>", addr
    if style == "quoted":
        return f'"{name}, Jr" <{addr}>', addr
    return f"=?UTF-8?Q?{name.replace(' ', '_')}?= <{addr}>", addr


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(
        st.one_of(well_formed(), garbage.map(lambda g: (g, None))), min_size=0, max_size=80
    ),
    split=st.booleans(),
)
def test_every_well_formed_address_survives_its_hostile_neighbours(
    entries: list[tuple[str, str | None]], split: bool
) -> None:
    wire = [text for text, _ in entries]
    headers = wire if split else [", ".join(wire)]
    parsed = parse_addresses(headers)
    got = [canonical_address(a.address) for a in parsed]
    want = [canonical_address(addr) for _, addr in entries if addr is not None]
    # Every valid address, in order; garbage adds nothing that is not an address.
    assert [g for g in got if g in set(want)] == want
    assert all(g is not None for g in got)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_date_header_gives_utc_or_nothing(value: str) -> None:
    when = parse_date(value)
    assert when is None or when.tzinfo == dt.UTC


@settings(max_examples=100, deadline=None)
@given(
    date=st.one_of(
        st.sampled_from(
            [
                "Tue, 1 Jul 2025 10:00:00 +9999",
                "Tue, 1 Jul 2025 25:61:00 +0200",
                "1 Jul 2025 10:00:00 -0000",
                "yesterday",
                "Mon, 31 Feb 2025 10:00:00 +0000",
            ]
        ),
        st.text(max_size=30),
    ),
    internal=st.integers(min_value=0, max_value=4_102_444_800_000),
    recipients=st.integers(min_value=0, max_value=600),
)
def test_a_message_always_keeps_its_delivery_time_and_recipients(
    date: str, internal: int, recipients: int
) -> None:
    to = ", ".join(f"p{i}@x{i % 7}.org" for i in range(recipients))
    record = parse_message(
        {
            "id": "m1",
            "threadId": "t1",
            "internalDate": str(internal),
            "labelIds": ["INBOX"],
            "payload": {"headers": [{"name": "Date", "value": date}, {"name": "To", "value": to}]},
        }
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert record.received_at == epoch + dt.timedelta(milliseconds=internal)
    assert len(record.to) == recipients
