"""Who is a person: own addresses, automated senders, lists, companies, merges; hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.addresses import canonical_address
from core.derive import people
from core.derive.people import MessageTraits, OwnAddresses, SenderTally


def test_own_addresses_include_aliases_and_plus_addresses() -> None:
    own = OwnAddresses.of(["Me@Acme.com", "me.alias@acme.com", None, "garbage"])
    assert "me@acme.com" in own
    assert "me+news@acme.com" in own
    assert "me.alias+x@acme.com" in own
    assert "m.e@acme.com" not in own  # dots only matter on Gmail


def test_gmail_dot_rule_applies_only_to_gmail() -> None:
    own = OwnAddresses.of(["ada.l@gmail.com"])
    assert "adal@gmail.com" in own
    assert "a.d.a.l+tag@googlemail.com" in own
    assert "adal@acme.com" not in own


@pytest.mark.parametrize(
    "address",
    ["no-reply@accounts.google.com", "noreply@x.com", "jira-noreply@acme.atlassian.net",
     "notifications@github.com", "mailer-daemon@mx.example.com", "donotreply@bank.example",
     "calendar-notification@google.com", "do_not_reply@x.org", "postmaster@x.org"],
)  # fmt: skip
def test_automated_addresses(address: str) -> None:
    assert people.classify(address) == people.AUTOMATED


@pytest.mark.parametrize("address", ["noreen@x.com", "ada@example.org", "notifyme.jones@x.com"])
def test_people_are_not_mistaken_for_robots(address: str) -> None:
    assert people.classify(address) == people.PERSON


def test_list_address_from_list_id() -> None:
    assert people.is_list_address("python-dev@python.org", "Python-Dev <python-dev.python.org>")
    assert not people.is_list_address("guido@python.org", "<python-dev.python.org>")
    assert people.classify("x@y.org", SenderTally(is_list=True)) == people.LIST


def test_sender_only_sending_bulk_is_not_a_person_unless_you_wrote_to_them() -> None:
    assert people.classify("news@shop.example", SenderTally(sent=3, machine=3)) == people.LIST
    assert people.classify("bot@x.example", SenderTally(sent=3, machine=3, auto=3)) == "automated"
    tally = SenderTally(sent=3, machine=3, written_to=True)
    assert people.classify("news@shop.example", tally) == people.PERSON


def test_which_messages_count_as_inbound() -> None:
    assert people.counts_as_inbound(MessageTraits())
    assert not people.counts_as_inbound(MessageTraits(auto_submitted="auto-replied"))
    assert people.counts_as_inbound(MessageTraits(auto_submitted="No"))
    assert not people.counts_as_inbound(MessageTraits(precedence="bulk"))
    assert not people.counts_as_inbound(MessageTraits(list_id="<a.b.org>"))
    assert people.counts_as_inbound(MessageTraits(list_id="<a.b.org>", user_addressed=True))
    assert not people.counts_as_inbound(MessageTraits(has_list_unsubscribe=True))
    assert people.counts_as_inbound(MessageTraits(has_list_unsubscribe=True, user_addressed=True))


def test_out_of_office_does_not_make_a_person_a_robot() -> None:
    assert not people.is_machine_message(MessageTraits(auto_submitted="auto-replied"))
    assert people.is_machine_message(MessageTraits(auto_submitted="auto-generated"))
    assert not people.says_about_sender(MessageTraits(list_id="<l.x.org>"))


@pytest.mark.parametrize(
    ("address", "company"),
    [("ada@example.org", "example.org"), ("a@mail.acme-corp.com", "acme-corp.com"),
     ("a@bbc.co.uk", "bbc.co.uk"), ("a@gmail.com", None), ("a@hotmail.co.uk", None),
     ("a@localhost", None), ("a@", None)],
)  # fmt: skip
def test_company_from_domain(address: str, company: str | None) -> None:
    assert people.company_of(address) == company


def test_display_names() -> None:
    assert people.normalise_name("Lovelace, Ada") == people.normalise_name(" ada  LOVELACE ")
    assert people.normalise_name("ada@example.org") is None
    assert not people.is_strong_name(people.normalise_name("Ada"))
    assert people.best_display_name({"Ada": 1, "Ada Lovelace": 3, "=?utf-8?b?x?=": 9}) == (
        "Ada Lovelace"
    )
    assert people.best_display_name({}) is None


def test_person_keys_need_a_shared_thread_and_a_strong_name() -> None:
    names = {
        "a@x.org": ["Grace Hopper"], "b@gmail.com": ["Hopper, Grace"],
        "c@y.org": ["Grace Hopper"], "d@z.org": ["Grace"], "e@z.org": ["Grace"],
    }  # fmt: skip
    threads = {"a@x.org": ["t1"], "b@gmail.com": ["t1"], "c@y.org": ["t2"],
               "d@z.org": ["t3"], "e@z.org": ["t3"]}  # fmt: skip
    keys = people.person_keys(names, threads)
    assert keys["a@x.org"] == keys["b@gmail.com"] == "a@x.org"
    assert keys["c@y.org"] == "c@y.org"
    assert keys["d@z.org"] != keys["e@z.org"]


# Hostile input: whatever reaches the tables must not crash the rules.

hostile = st.text(max_size=80) | st.from_regex(r"[^@]{0,20}@[^@]{0,20}", fullmatch=True)


@given(address=hostile, list_id=st.none() | st.text(max_size=40))
def test_rules_never_crash_on_hostile_addresses(address: str, list_id: str | None) -> None:
    canonical = canonical_address(address) or address
    people.classify(canonical, SenderTally(sent=1))
    people.is_list_address(canonical, list_id)
    people.company_of(canonical)
    people.mailbox_key(canonical)
    assert isinstance(canonical in OwnAddresses.of([address, canonical]), bool)


@given(
    names=st.dictionaries(
        st.emails(), st.lists(st.none() | st.text(max_size=30), max_size=3), max_size=8
    ),
    threads=st.dictionaries(st.emails(), st.lists(st.text(max_size=3), max_size=3), max_size=8),
)
def test_person_keys_are_a_partition_keyed_by_its_smallest_member(
    names: dict[str, list[str | None]], threads: dict[str, list[str]]
) -> None:
    keys = people.person_keys(names, threads)
    assert set(keys) == set(names) | set(threads)  # nothing dropped
    for address, key in keys.items():
        assert key <= address
        assert keys[key] == key


@given(
    traits=st.builds(
        MessageTraits,
        list_id=st.none() | st.text(max_size=30),
        precedence=st.none() | st.text(max_size=10),
        auto_submitted=st.none() | st.text(max_size=20),
        has_list_unsubscribe=st.booleans(),
        user_addressed=st.booleans(),
    )
)
def test_message_rules_never_crash(traits: MessageTraits) -> None:
    people.counts_as_inbound(traits)
    people.is_machine_message(traits)
    people.says_about_sender(traits)


@pytest.mark.parametrize(
    "raw",
    [
        "a\x00b@x.io",  # a decoded header can carry NUL: not storable text in PostgreSQL
        "ann@exam\x07ple.com",
        "a" * 64 + "@" + "b" * 186 + ".com",  # 255 characters: longer than any SMTP path allows
    ],
)
def test_damaged_or_impossible_addresses_are_not_addresses(raw: str) -> None:
    assert canonical_address(raw) is None


def test_the_longest_legal_address_is_kept() -> None:
    address = "a" * 64 + "@" + "b" * 185 + ".com"
    assert len(address) == 254
    assert canonical_address(address) == address
