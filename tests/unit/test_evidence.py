"""Evidence hashing, merge variables, document rendering, diffs, references and terms parameters (no DB)."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError

AT = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)


def facts(seq: int, kind: str = "viewed", **kw) -> evidence.EventFacts:
    base = dict(agreement_reference="AGR-AAAA-BBBB-CCCC", seq=seq, kind=kind, occurred_at=AT + timedelta(seconds=seq),
                ip="203.0.113.7", user_agent="Mozilla/5.0", session_id="s1", contact_id=4, staff_id=None,
                data={"document_sha256": "ab" * 32})
    base.update(kw)
    return evidence.EventFacts(**base)


# ---------------------------------------------------------------------------------------------------- canonical JSON

def test_canonical_json_is_sorted_compact_utf8():
    assert evidence.canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


def test_canonical_json_refuses_floats_anywhere():
    with pytest.raises(TypeError):
        evidence.canonical_json({"fee": [1, {"x": 1.5}]})


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=6))
def test_canonical_json_does_not_depend_on_key_order(data):
    reordered = dict(reversed(list(data.items())))
    assert evidence.canonical_json(data) == evidence.canonical_json(reordered)


def test_sha256_hex_of_text_is_of_its_utf8_bytes():
    assert evidence.sha256_hex("ü") == hashlib.sha256("ü".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------- hash chain

def test_first_event_points_to_genesis_and_each_next_to_the_one_before():
    chain = evidence.build_chain([facts(1), facts(2), facts(3)])
    assert chain[0].prev_hash == evidence.GENESIS
    assert [c.prev_hash for c in chain[1:]] == [c.hash for c in chain[:-1]]
    assert len({c.hash for c in chain}) == 3
    report = evidence.verify_chain(chain, expected_head=chain[-1].hash, expected_count=3)
    assert report.intact and report.count == 3 and report.head == chain[-1].hash


def test_times_in_other_zones_hash_like_the_same_utc_instant():
    local = AT.astimezone(timezone(timedelta(hours=-5)))
    assert evidence.event_hash("0" * 64, facts(1, occurred_at=local)) == \
        evidence.event_hash("0" * 64, facts(1, occurred_at=AT))


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        evidence.event_hash(evidence.GENESIS, facts(1, occurred_at=AT.replace(tzinfo=None)))


@pytest.mark.parametrize("change", [
    {"kind": "signed"}, {"ip": "203.0.113.8"}, {"user_agent": "curl"}, {"session_id": "s2"}, {"contact_id": 5},
    {"staff_id": 1}, {"data": {"document_sha256": "cd" * 32}}, {"occurred_at": AT + timedelta(microseconds=1)},
    {"agreement_reference": "AGR-AAAA-BBBB-CCCD"},
])
def test_changing_any_field_of_any_event_breaks_verification(change):
    chain = evidence.build_chain([facts(1), facts(2), facts(3)])
    tampered = list(chain)
    tampered[1] = replace(chain[1], facts=replace(chain[1].facts, **change))
    report = evidence.verify_chain(tampered)
    assert not report.intact
    assert report.bad_seq == 2
    assert "changed" in report.problem


def test_recomputing_a_changed_event_hash_still_breaks_the_next_link():
    chain = evidence.build_chain([facts(1), facts(2), facts(3)])
    forged_facts = replace(chain[1].facts, ip="198.51.100.1")
    forged = evidence.Link(forged_facts, chain[1].prev_hash, evidence.event_hash(chain[1].prev_hash, forged_facts))
    report = evidence.verify_chain([chain[0], forged, chain[2]])
    assert not report.intact and report.bad_seq == 3


def test_a_missing_middle_event_is_detected():
    chain = evidence.build_chain([facts(1), facts(2), facts(3)])
    report = evidence.verify_chain([chain[0], chain[2]])
    assert not report.intact and report.bad_seq == 2 and "missing" in report.problem


def test_a_missing_last_event_is_detected_by_the_recorded_head_and_count():
    chain = evidence.build_chain([facts(1), facts(2), facts(3)])
    assert evidence.verify_chain(chain[:2]).intact  # the chain alone cannot tell...
    report = evidence.verify_chain(chain[:2], expected_head=chain[2].hash, expected_count=3)
    assert not report.intact and "3 events" in report.problem  # ...the agreement's record can
    assert not evidence.verify_chain(chain[:2], expected_head=chain[2].hash).intact


def test_empty_chain_is_intact_at_genesis():
    report = evidence.verify_chain([])
    assert report.intact and report.count == 0 and report.head == evidence.GENESIS


# ---------------------------------------------------------------------------------------------------- anchor

def test_the_anchor_needs_the_key_and_covers_reference_count_and_head():
    key, head = b"k" * 32, "ab" * 32
    stored = evidence.anchor(key, "AGR-AAAA-BBBB-CCCC", 3, head)
    assert evidence.anchor_matches(key, "AGR-AAAA-BBBB-CCCC", 3, head, stored)
    assert not evidence.anchor_matches(b"x" * 32, "AGR-AAAA-BBBB-CCCC", 3, head, stored)
    assert not evidence.anchor_matches(key, "AGR-AAAA-BBBB-CCCD", 3, head, stored)
    assert not evidence.anchor_matches(key, "AGR-AAAA-BBBB-CCCC", 2, head, stored)
    assert not evidence.anchor_matches(key, "AGR-AAAA-BBBB-CCCC", 3, "cd" * 32, stored)
    assert not evidence.anchor_matches(key, "AGR-AAAA-BBBB-CCCC", 3, head, "")  # never anchored


# ---------------------------------------------------------------------------------------------------- the record

def test_the_signed_record_is_rebuilt_from_the_signers_own_events_before_signing():
    signed = {"signer_name": "Dana Whitfield", "document_sha256": "ab" * 32}
    chain = evidence.build_chain([
        facts(1, "invited", contact_id=None, staff_id=1),
        facts(2, "consented", contact_id=9),  # another contact: not the signer's consent
        facts(3, "consented"),
        facts(4, "clause_acknowledged", data={"clause": "autopay"}),
        facts(5, "signed", data=signed, ip="198.51.100.4"),
        facts(6, "clause_acknowledged", data={"clause": "late_fees"}),  # after signing: not part of it
        facts(7, "superseded", contact_id=None),
    ])
    record = evidence.signed_record(chain)
    assert record["signer_name"] == "Dana Whitfield" and record.ip == "198.51.100.4"
    assert record.signed_at == AT + timedelta(seconds=5) and record.head == chain[4].hash
    assert record.consent.seq == 3 and [a["clause"] for a in record.acknowledgments] == ["autopay"]
    assert evidence.chain_status(chain) == "superseded" and evidence.chain_status(chain[:5]) == "signed"


def test_a_chain_without_a_signed_event_has_no_record():
    chain = evidence.build_chain([facts(1, "invited"), facts(2, "consented"), facts(3, "declined")])
    assert evidence.signed_record(chain) is None and evidence.chain_status(chain) == "declined"


# ---------------------------------------------------------------------------------------------------- references

def test_references_have_the_public_shape_and_do_not_repeat():
    refs = {evidence.new_reference() for _ in range(500)}
    assert len(refs) == 500
    assert all(evidence.normalize_reference(r) == r for r in refs)


@pytest.mark.parametrize("typed, expected", [
    ("agr-7k3m-q9td-2xwb", "AGR-7K3M-Q9TD-2XWB"),
    (" AGR 7K3M Q9TD 2XWB ", "AGR-7K3M-Q9TD-2XWB"),
    ("7K3MQ9TD2XWB", "AGR-7K3M-Q9TD-2XWB"),
    ("AGR-7K3M-Q9TD-2XWO", "AGR-7K3M-Q9TD-2XW0"),  # O read as zero
    ("AGR-7K3M-Q9TD-2XW", None),
    ("AGR-7K3M-Q9TD-2XWU", None),  # U is not in the alphabet
    ("", None),
    ("<script>", None),
])
def test_normalize_reference(typed, expected):
    assert evidence.normalize_reference(typed) == expected


# ---------------------------------------------------------------------------------------------------- documents

def test_merge_fills_every_placeholder_with_or_without_spaces():
    assert evidence.merge("{{a}} and {{  b }}", {"a": "1", "b": "2"}) == "1 and 2"


def test_merge_refuses_unknown_variables_instead_of_leaving_a_blank():
    with pytest.raises(DomainError, match="late_fe"):
        evidence.merge("Fee: {{ late_fe }}", {"late_fee": "1.5"})


def test_dollar_signs_and_single_braces_are_plain_text():
    assert evidence.merge("$25 {x} {{ a }}", {"a": "ok"}) == "$25 {x} ok"


def test_to_html_headings_lists_bold_and_paragraphs():
    html = evidence.to_html("# Terms\n\n## 1. Due\nPay **now**.\nReally.\n\n- one\n- two\nAfter")
    assert html == ("<h1>Terms</h1>\n<h2>1. Due</h2>\n<p>Pay <strong>now</strong>.<br>\nReally.</p>\n"
                    "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<p>After</p>\n")


def test_to_html_escapes_everything_a_client_name_could_carry():
    html = evidence.to_html(evidence.merge("## {{ n }}\n{{ n }}", {"n": '<img src=x onerror="a()"> & Co'}))
    assert "<img" not in html and "&lt;img src=x onerror=&quot;a()&quot;&gt; &amp; Co" in html


def test_to_html_is_deterministic_for_the_same_text():
    assert evidence.to_html(T.DEFAULT_TERMS_TEXT) == evidence.to_html(T.DEFAULT_TERMS_TEXT)


# ---------------------------------------------------------------------------------------------------- diff

def test_line_diff_shows_changes_with_context_and_collapses_the_rest():
    old = "\n".join(f"line {i}" for i in range(1, 21))
    new = old.replace("line 10", "line ten")
    rows = evidence.line_diff(old, new, context=2)
    ops = [(r.op, r.text) for r in rows]
    assert ("removed", "line 10") in ops and ("added", "line ten") in ops
    assert ops[0] == ("skipped", "7 unchanged lines")
    assert ("same", "line 9") in ops and ("same", "line 11") in ops
    assert ops[-1] == ("skipped", "8 unchanged lines")
    assert evidence.has_changes(rows)


def test_line_diff_of_equal_texts_has_no_changes():
    rows = evidence.line_diff("a\n\nb", "a\nb\n")
    assert not evidence.has_changes(rows)


# ---------------------------------------------------------------------------------------------------- signatures

def png(width: int = 300, height: int = 100) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff" * width for _ in range(height))
    return (evidence.PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_drawn_signature_decodes_to_its_png_bytes():
    image = png()
    assert evidence.decode_signature_png(data_url(image)) == image


@pytest.mark.parametrize("value", [
    "", "data:image/jpeg;base64,AAAA", "data:image/png;base64,!!notbase64!!",
    data_url(b"GIF89a" + b"\x00" * 40), data_url(png(5, 5)), data_url(png(5000, 100)),
])
def test_bad_drawn_signatures_are_refused_with_a_message(value):
    with pytest.raises(DomainError, match="signature"):
        evidence.decode_signature_png(value)


def test_an_oversized_drawn_signature_is_refused():
    with pytest.raises(DomainError, match="too large"):
        evidence.decode_signature_png("data:image/png;base64," + "A" * 600_000)


# ---------------------------------------------------------------------------------------------------- terms

def test_default_parameters_are_valid_except_the_governing_law_to_publish():
    assert T.parse_parameters(T.DEFAULT_PARAMETERS)["late_fee_percent"] == "1.5"
    with pytest.raises(DomainError, match="Governing law"):
        T.parse_parameters(T.DEFAULT_PARAMETERS, for_publishing=True)
    ok = T.parse_parameters({**T.DEFAULT_PARAMETERS, "governing_law": "the laws of Ohio"}, for_publishing=True)
    assert ok["governing_law"] == "the laws of Ohio"


@pytest.mark.parametrize("name, value, message", [
    ("late_fee_percent", "abc", "enter a number"), ("late_fee_percent", "7", "from 0 to 5"),
    ("late_fee_percent", "1.555", "two decimals"), ("grace_days", "2.5", "whole number"),
    ("remote_disable_days", "0", "from 1 to 365"), ("remote_disable_notice_days", "", "enter a number"),
    ("hold_days", "NaN", "from 1 to 180"), ("governing_law", "x" * 201, "200 characters"),
])
def test_bad_parameters_are_refused(name, value, message):
    with pytest.raises(DomainError, match=message):
        T.parse_parameters({**T.DEFAULT_PARAMETERS, name: value})


def test_parameters_are_normalized_so_the_version_hash_has_one_spelling():
    values = T.parse_parameters({**T.DEFAULT_PARAMETERS, "late_fee_percent": "1.50", "grace_days": " 05 "})
    assert values["late_fee_percent"] == "1.5" and values["grace_days"] == "5"


def test_the_default_template_covers_every_required_clause_and_merges_cleanly():
    variables = T.merge_variables(msp_legal_name="Acme IT LLC", msp_email="billing@acme.test",
                                  client_legal_name="Harbor Dental", net_days=30,
                                  parameters={**T.DEFAULT_PARAMETERS, "governing_law": "the laws of Ohio"},
                                  effective_date=AT.date())
    text = evidence.merge(T.DEFAULT_TERMS_TEXT, variables)
    for heading in ("When invoices are due", "How to pay", "Automatic payments", "Late fees", "Service hold",
                    "Remote disabling", "Equipment ownership and recovery", "Deposits", "Collection costs",
                    "Governing law"):
        assert any(line.startswith("## ") and heading in line for line in text.splitlines()), heading
    assert "45 days past due" in text and "10 days' written notice" in text and "the laws of Ohio" in text
    assert "{{" not in text
    for clause in T.HIGH_RISK_CLAUSES:
        assert "{{" not in evidence.merge(clause.statement, variables)
    assert "{{" not in evidence.merge(T.DEFAULT_DISCLOSURE_TEXT, variables)
