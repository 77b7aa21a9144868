"""``record_links`` (portal.web.template_helpers): a list's per-row links, built once per page, are exactly what
``url_for`` builds for each row."""

from __future__ import annotations

import pytest
from flask import render_template_string, url_for

from portal.web.params import MAX_ID

ROUTES = [("client.invoice", "invoice_id"), ("admin.invoice_detail", "invoice_id"),
          ("admin.payment_detail", "payment_id"), ("admin.client_detail", "client_id")]


@pytest.mark.parametrize(("endpoint", "key"), ROUTES)
def test_each_link_is_what_url_for_builds(app, endpoint, key):
    with app.test_request_context("/"):
        links = app.jinja_env.globals["record_links"](endpoint, key)
        for record_id in (1, 7, 42, 1_000_000, MAX_ID - 1, MAX_ID):
            assert links[record_id] == url_for(endpoint, **{key: record_id})


def test_a_link_takes_only_a_record_id(app):
    with app.test_request_context("/"):
        links = app.jinja_env.globals["record_links"]("admin.client_detail", "client_id")
        with pytest.raises(ValueError):
            links["1/../../admin/staff"]  # never text pasted into a path


def test_links_follow_the_apps_mount_point(app):
    """Behind a proxy that mounts the portal under a path, the links carry it, as url_for's do."""
    with app.test_request_context("/", base_url="http://localhost/billing"):
        html = render_template_string("{{ record_links('admin.client_detail', 'client_id')[5] }}")
        assert html == url_for("admin.client_detail", client_id=5) == "/billing/admin/clients/5"
