"""The frame every page is drawn in (portal.web.frame): the main navigation of each side marks the section a page
belongs to, and its links, built once per place the portal is mounted, follow that place."""

from __future__ import annotations

import re

from portal.web import frame
from tests.conftest import sign_in

from .conftest import page

STAFF_PATHS = ["/admin/", "/admin/receivables", "/admin/clients", "/admin/invoices", "/admin/payments",
               "/admin/autopay", "/admin/plans", "/admin/late-fees", "/admin/collections/", "/admin/orders",
               "/admin/runs", "/admin/agreements/", "/admin/api/", "/admin/outbox", "/admin/settings"]
CLIENT_PATHS = ["/", "/invoices", "/payments", "/reminders", "/orders", "/statement", "/autopay", "/agreements/",
                "/password"]


def _nav(response) -> str:
    assert response.status_code == 200
    return page(response).split('<nav class="main-nav"', 1)[1].split("</nav>", 1)[0]


def _links(nav: str) -> list[tuple[str, str]]:
    return re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', nav)


def _current(nav: str) -> list[str]:
    return re.findall(r'<a href="[^"]*" class="active" aria-current="page">([^<]*)</a>', nav)


def test_the_staff_navigation_links_every_section_and_marks_the_pages_own(admin, make):
    client = make.client()
    nav = _nav(admin.get(f"/admin/clients/{client.id}"))
    assert [label for _, label in _links(nav)] == [label for _, label, _ in frame.STAFF]
    assert [href for href, _ in _links(nav)] == STAFF_PATHS
    assert _current(nav) == ["Clients"]
    assert _current(_nav(admin.get("/admin/invoices"))) == ["Invoices"]
    # a client's autopay page is one of the client's pages (it was marked under both)
    assert _current(_nav(admin.get(f"/admin/clients/{client.id}/autopay"))) == ["Clients"]
    assert _current(_nav(admin.get("/admin/autopay"))) == ["Autopay"]
    assert _current(_nav(admin.get("/admin/"))) == ["Dashboard"]


def test_the_client_navigation_marks_the_pages_own_section(http, make):
    contact = make.contact(make.client())
    sign_in(http, contact)
    nav = _nav(http.get("/invoices"))
    assert [label for _, label in _links(nav)] == [label for _, label, _ in frame.CLIENT]
    assert [href for href, _ in _links(nav)] == CLIENT_PATHS
    assert _current(nav) == ["Invoices"]
    assert _current(_nav(http.get("/payments"))) == ["Payments"]
    assert _current(_nav(http.get("/"))) == ["Overview"]


def test_the_frames_links_follow_where_the_portal_is_mounted(admin):
    """Built once per script root: a view under /billing gets /billing links, and one at the root right after it
    gets root links (then /billing again), never another mount's."""
    for mount in ("/billing", "", "/billing", "/msp/portal", ""):
        response = admin.get("/admin/invoices", base_url=f"http://localhost{mount}/")
        text = response.get_data(as_text=True)
        hrefs = [href for href, _ in _links(_nav(response))]
        assert hrefs and all(href.startswith(f"{mount}/admin/") for href in hrefs), (mount, hrefs)
        assert f'href="{mount}/static/css/portal.css"' in text
        assert f'src="{mount}/static/js/error-summary.js"' in text
        logout = re.search(r'<form method="post" action="([^"]*)"[^>]*>\s*<input[^>]*>\s*<button[^>]*>Sign out',
                           text)
        assert logout and logout.group(1) == f"{mount}/logout"
