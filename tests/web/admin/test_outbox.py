"""The outbox page: .eml files the app wrote instead of sending, newest first; one message; no path tricks."""

from __future__ import annotations

from datetime import timedelta

from portal import db
from portal.gateways.email import Attachment
from portal.services import mail
from portal.web.runtime import runtime

from .conftest import page


def write(to: str, subject: str, text: str, attachments=()) -> str:
    """A message written to the outbox the way the app writes one (no SMTP server configured)."""
    mailer = runtime().mailer
    delivery = mailer.deliver(mailer.build(sender=mail.sender(db.session()), to=[to], subject=subject, text=text,
                                           attachments=attachments))
    assert delivery.ok
    return delivery.message_id


def test_list_newest_first_and_view(admin, outbox, clock):
    write("first@client.test", "Invoice INV-000001", "Older")
    clock.advance(hours=2)
    write("second@client.test", "Payment received", "Thanks for paying <b>on time</b>.",
          attachments=[Attachment("INV-000002.pdf", b"%PDF-1.7 fake")])

    listing = page(admin.get("/admin/outbox"))
    assert listing.index("Payment received") < listing.index("Invoice INV-000001")
    assert "second@client.test" in listing and "Mar 16, 2026 17:00 UTC" in listing

    newest = sorted(p.name for p in outbox.glob("*.eml"))[-1]
    response = admin.get(f"/admin/outbox/{newest}")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Thanks for paying &lt;b&gt;on time&lt;/b&gt;." in text  # shown as text, never as markup
    assert "INV-000002.pdf" in text and "second@client.test" in text and "Payment received" in text


def test_message_names_are_guarded(admin, app, outbox):
    write("a@client.test", "Hello", "Hi")
    (outbox / "notes.txt").write_text("not an email")
    (outbox.parent / "secret.eml").write_text("Subject: secret\n\nno")
    for url in ("/admin/outbox/notes.txt", "/admin/outbox/..%2Fsecret.eml", "/admin/outbox/../secret.eml",
                "/admin/outbox/%2E%2E%2Fsecret.eml", "/admin/outbox/missing.eml"):
        response = admin.get(url)
        assert response.status_code == 404, url
        assert "secret" not in response.get_data(as_text=True), url


def test_empty_outbox_and_pages(admin, clock):
    assert "The outbox is empty." in page(admin.get("/admin/outbox"))
    for n in range(51):
        write(f"c{n}@client.test", f"Reminder {n:02d}", "Due soon")
        clock.advance(seconds=1)
    first, second = page(admin.get("/admin/outbox")), page(admin.get("/admin/outbox?page=2"))
    assert "Reminder 50" in first and "Reminder 00" not in first
    assert "Reminder 00" in second and "Page 2 of 2 · 51 in all" in second
    assert clock.now() - timedelta(seconds=51) < clock.now()
