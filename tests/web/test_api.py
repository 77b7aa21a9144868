"""The help-desk API over HTTP: token life cycle, isolation, JSON errors, pagination, rate limit, OpenAPI."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.domain.webhooks import EventType
from portal.models import ApiToken
from portal.services import api_tokens
from portal.services.api_tokens import Scope

UNAUTHORIZED = {"error": "A valid API token is required (Authorization: Bearer <token>)."}


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def token(session, make):
    return api_tokens.create(session, name="Help desk", scopes=["standing:read", "clients:list"], staff=make.staff())


@pytest.fixture
def on_hold(make, clock):
    client = make.client("Harbor Dental LLC", external_id="PSA-100")
    make.invoice(client, 12_345, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1))  # 43 days past due
    return client


def test_a_token_is_shown_once_stored_hashed_works_and_is_stamped_when_used(session, http, token, on_hold, clock):
    row = session.scalar(select(ApiToken))
    assert token.secret.startswith(row.prefix + "_") and len(token.secret) > 40
    assert row.token_sha256 == hashlib.sha256(token.secret.encode()).hexdigest()
    assert token.secret not in json.dumps([row.name, row.scope, row.prefix, row.token_sha256])
    assert row.last_used_at is None

    response = http.get("/api/v1/clients/PSA-100/standing", headers=bearer(token.secret))
    assert response.status_code == 200 and response.content_type == "application/json"
    body = response.get_json()
    assert body["client"] == {"id": on_hold.id, "external_id": "PSA-100", "name": "Harbor Dental LLC"}
    assert (body["standing"], body["on_hold"], body["to_lift_cents"], body["basis"]) == (
        "on_hold", True, 12_345, "default_terms")
    assert (body["currency"], body["days_past_due"], body["hold_days"]) == ("USD", 43, 15)
    session.expire_all()
    assert session.get(ApiToken, row.id).last_used_at == clock.at

    api_tokens.revoke(session, row.id)
    response = http.get("/api/v1/clients/PSA-100/standing", headers=bearer(token.secret))
    assert response.status_code == 401 and response.get_json() == UNAUTHORIZED


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Bearer psa_abcdefgh_" + "x" * 43},  # well formed, unknown
    {"Authorization": "Bearer " + "a" * 5000},
])
def test_missing_malformed_or_wrong_tokens_get_the_same_401(http, token, on_hold, headers):
    for path in ("/api/v1/clients/PSA-100/standing", "/api/v1/clients", "/api/v1/clients/NOPE/standing"):
        response = http.get(path, headers=headers)
        assert response.status_code == 401 and response.get_json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Harbor" not in response.get_data(as_text=True)


def test_a_token_without_the_scope_gets_403_and_nothing_else(session, http, make, on_hold):
    lookup_only = api_tokens.create(session, name="Ticket lookup", scopes=["standing:read"], staff=None)
    list_only = api_tokens.create(session, name="Nightly sync", scopes=["clients:list"], staff=None)
    assert http.get("/api/v1/clients/PSA-100/standing", headers=bearer(lookup_only.secret)).status_code == 200
    refused = http.get("/api/v1/clients", headers=bearer(lookup_only.secret))
    assert refused.status_code == 403 and refused.get_json() == {"error": "This token is not allowed to do this."}
    refused = http.get("/api/v1/clients/PSA-100/standing", headers=bearer(list_only.secret))
    assert refused.status_code == 403 and "Harbor" not in refused.get_data(as_text=True)
    assert http.get("/api/v1/clients", headers=bearer(list_only.secret)).status_code == 200


def test_an_unknown_external_id_is_404_json(http, token, on_hold):
    for external_id in ("PSA-999", "psa-100", "x" * 150, "PSA-100%20"):
        response = http.get(f"/api/v1/clients/{external_id}/standing", headers=bearer(token.secret))
        assert response.status_code == 404
        assert response.get_json() == {"error": "No client with this external id."}
    unstorable = http.get("/api/v1/clients/PSA-100%00/standing", headers=bearer(token.secret))
    assert unstorable.status_code == 400 and unstorable.is_json and "Harbor" not in unstorable.get_data(as_text=True)


def test_every_error_under_the_api_is_json(http, token):
    missing = http.get("/api/v1/nothing-here", headers=bearer(token.secret))
    assert missing.status_code == 404 and missing.is_json
    wrong_method = http.post("/api/v1/clients", headers=bearer(token.secret))
    assert wrong_method.status_code == 405 and wrong_method.is_json


def test_the_list_pages_through_every_client_once(session, http, token, make, clock):
    clients = [make.client(f"Client {n} LLC", external_id=f"C-{n}") for n in range(5)]
    make.invoice(clients[3], 5_000, issue_date=date(2026, 1, 1), due_date=clock.at.date() - timedelta(days=20))
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = http.get(f"/api/v1/clients{query}", headers=bearer(token.secret)).get_json()
        pages += 1
        seen += [(c["client"]["external_id"], c["standing"]) for c in body["data"]]
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            break
        cursor = body["next_cursor"]
    assert pages == 3
    assert seen == [("C-0", "good"), ("C-1", "good"), ("C-2", "good"), ("C-3", "on_hold"), ("C-4", "good")]
    default = http.get("/api/v1/clients", headers=bearer(token.secret)).get_json()
    assert len(default["data"]) == 5 and default["next_cursor"] is None


@pytest.mark.parametrize(("query", "message"), [
    ("limit=0", "limit must be"), ("limit=201", "limit must be"), ("limit=abc", "limit must be"),
    ("limit=-1", "limit must be"), ("cursor=%%%", "cursor is not valid"), ("cursor=Yw", "cursor is not valid"),
    ("cursor=" + "A" * 300, "cursor is not valid"),
])
def test_bad_paging_parameters_are_400_json(http, token, query, message):
    response = http.get(f"/api/v1/clients?{query}", headers=bearer(token.secret))
    assert response.status_code == 400 and message in response.get_json()["error"]


@pytest.mark.parametrize("limit", ["%C2%B2", "%C2%B9%C2%B2", "%D9%A3"])  # "²", "¹²", Arabic-Indic 3
def test_a_limit_in_other_digit_characters_is_400_json_not_500(http, token, limit):
    response = http.get(f"/api/v1/clients?limit={limit}", headers=bearer(token.secret))
    assert response.status_code == 400 and "limit must be" in response.get_json()["error"]


class TestRateLimit:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "RATELIMIT_ENABLED": True, "API_RATE_LIMIT": "3 per minute"}

    def test_over_the_limit_the_api_answers_429_json(self, http, token, on_hold):
        for _ in range(3):
            assert http.get("/api/v1/clients/PSA-100/standing", headers=bearer(token.secret)).status_code == 200
        blocked = http.get("/api/v1/clients", headers=bearer(token.secret))  # one budget for the whole API
        assert blocked.status_code == 429 and blocked.is_json
        assert "Too many" in blocked.get_json()["error"]
        # guessing tokens is limited the same way
        assert http.get("/api/v1/clients", headers=bearer("psa_guessing_" + "x" * 40)).status_code == 429


def test_the_openapi_document_is_served_and_describes_the_api(http, app):
    response = http.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.content_type.startswith("application/json")
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {"/clients/{external_id}/standing", "/clients"}
    assert set(doc["webhooks"]) == {event.value for event in EventType}
    assert doc["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    standing = doc["components"]["schemas"]["ClientStanding"]["properties"]["standing"]
    assert standing["enum"] == ["good", "warning", "on_hold"]
    # every route of the blueprint is documented
    routes = {rule.rule.removeprefix("/api/v1").replace("<external_id>", "{external_id}")
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")}
    assert routes == set(doc["paths"])
    try:
        from openapi_spec_validator import validate
    except ImportError:  # not a dependency of the project; validated where it is installed
        return
    validate(doc)


def test_scopes_are_named_in_the_document(http):
    text = http.get("/api/v1/openapi.json").get_data(as_text=True)
    for scope in Scope:
        assert scope.value in text


@pytest.mark.parametrize("after", [b"c2147483648", b"c99999999999"])  # past any 32-bit client id: never one of ours
def test_a_cursor_past_every_possible_client_id_is_400_json_not_500(http, token, on_hold, after):
    import base64

    cursor = base64.urlsafe_b64encode(after).decode().rstrip("=")
    response = http.get(f"/api/v1/clients?cursor={cursor}", headers=bearer(token.secret))
    assert response.status_code == 400 and "cursor is not valid" in response.get_json()["error"]
