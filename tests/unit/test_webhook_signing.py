"""Outbound webhook signatures (domain.webhooks): the documented scheme, checked against an independent HMAC."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from portal.domain import webhooks as W
from portal.domain.errors import DomainError

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"standing.changed"}'
NOW = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)


def test_the_header_is_t_and_v1_hmac_sha256_over_timestamp_dot_body():
    t = int(NOW.timestamp())
    header = W.sign(SECRET, t, BODY)
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"


def test_verify_accepts_the_signed_body_and_refuses_anything_else():
    t = int(NOW.timestamp())
    header = W.sign(SECRET, t, BODY)
    assert W.verify(SECRET, header, BODY, NOW)
    assert W.verify(SECRET, header, BODY, NOW + timedelta(seconds=299))
    assert not W.verify(SECRET, header, BODY, NOW + timedelta(seconds=301))  # replayed later
    assert not W.verify(SECRET, header, BODY + b" ", NOW)  # body changed
    assert not W.verify("whsec_other", header, BODY, NOW)  # another endpoint's secret
    assert not W.verify(SECRET, header.replace(f"t={t}", f"t={t + 1}"), BODY, NOW)  # timestamp changed
    assert not W.verify(SECRET, "", BODY, NOW)
    assert not W.verify(SECRET, "t=abc,v1=00", BODY, NOW)
    # several v1 values (a receiver during a secret rotation): one matching is enough
    assert W.verify(SECRET, f"{header},v1={'0' * 64}", BODY, NOW)


def test_the_backoff_grows_and_then_gives_up():
    waits = [W.next_attempt_at(n, NOW) - NOW for n in range(1, W.MAX_ATTEMPTS)]
    assert waits == list(W.BACKOFF)
    assert waits == sorted(waits) and waits[0] == timedelta(minutes=1)
    assert W.next_attempt_at(W.MAX_ATTEMPTS, NOW) is None


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_acknowledges(code):
    assert W.acknowledged(code)


@pytest.mark.parametrize("code", [199, 301, 400, 410, 500, 503])
def test_anything_else_does_not(code):
    assert not W.acknowledged(code)


@pytest.mark.parametrize("url", ["", "ftp://x.test/", "file:///etc/passwd", "https://", "not a url",
                                 "https://x.test/" + "a" * 500])
def test_an_endpoint_url_must_be_http_or_https_with_a_host(url):
    with pytest.raises(DomainError):
        W.check_url(url)


def test_a_good_url_is_kept():
    assert W.check_url(" https://psa.example.test/hooks/portal ") == "https://psa.example.test/hooks/portal"
