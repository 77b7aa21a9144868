"""Open tracking over HTTP: a person viewing the page counts; HEAD, link scanners and staff previews do not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.models import InvoiceEvent, InvoiceLink
from tests.conftest import sign_in

from .conftest import path_of

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                         "Version/17.5 Safari/605.1.15"}


def reload(session, link) -> InvoiceLink:
    session.expire_all()
    return session.get(InvoiceLink, link.id)


def test_each_view_by_a_person_is_counted_with_first_and_last_time(http, session, link, clock):
    first = clock.now()
    assert http.get(path_of(link), headers=BROWSER).status_code == 200
    clock.advance(days=2)
    assert http.get(path_of(link), headers=BROWSER).status_code == 200

    link = reload(session, link)
    assert (link.open_count, link.first_opened_at, link.last_opened_at) == (2, first, first + timedelta(days=2))
    opened = session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind == "opened")).all()
    assert [e.link_id for e in opened] == [link.id]  # the timeline notes the first open only


def test_a_crawler_fetching_with_head_does_not_count(http, session, link):
    response = http.head(path_of(link), headers=BROWSER)

    assert response.status_code == 200
    assert reload(session, link).open_count == 0


def test_link_scanners_and_previews_do_not_count(http, session, link):
    for agent in ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                  "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Microsoft Office Existence Discovery",
                  "python-requests/2.32.3", ""):
        assert http.get(path_of(link), headers={"User-Agent": agent}).status_code == 200

    link = reload(session, link)
    assert (link.open_count, link.first_opened_at) == (0, None)
    assert session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind == "opened")).all() == []


def test_staff_previewing_a_link_does_not_count(http, session, link, make):
    sign_in(http, make.staff())

    assert http.get(path_of(link), headers=BROWSER).status_code == 200
    assert reload(session, link).open_count == 0


def test_downloading_the_pdf_or_a_dead_link_is_not_an_open(http, session, link):
    assert http.get(path_of(link) + "/pdf", headers=BROWSER).status_code == 200
    assert http.get(path_of(link)[:-2] + "xx", headers=BROWSER).status_code == 404

    assert reload(session, link).open_count == 0
