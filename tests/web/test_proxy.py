"""Behind a reverse proxy the client's address comes from X-Forwarded-For, but only when the proxy is trusted:
otherwise anyone could forge the header to dodge rate limits or falsify signing evidence."""

import pytest
from flask import request

from portal import create_app


@pytest.mark.parametrize(("proxies", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_client_address_honours_forwarded_for_only_from_trusted_proxies(_schema, app_config, proxies, expected):
    app = create_app({**app_config, "TRUSTED_PROXIES": proxies})
    app.add_url_rule("/_whoami", "whoami", lambda: request.remote_addr or "")
    response = app.test_client().get("/_whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.get_data(as_text=True) == expected
    app.extensions["db_engine"].dispose()
