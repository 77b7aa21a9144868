"""Settings: the MSP's details, and the logo (PNG/JPEG by magic bytes, at most 1 MB, served publicly)."""

from __future__ import annotations

import io
from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from portal.services.branding import MAX_LOGO_BYTES
from portal.services.settings import get_settings

from .conftest import page

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
SETTINGS = {"name": "Bright IT", "legal_name": "Bright IT Services LLC", "address": "1 Loop Rd\nAustin, TX",
            "email": "billing@bright.test", "reply_to": "ar@bright.test", "phone": "512-555-0100",
            "website": "https://bright.test", "currency": "CAD", "default_net_days": "45",
            "payment_instructions": "Checks payable to Bright IT Services LLC."}


def upload(http, data: bytes, filename: str):
    """POST a logo. The body is encoded in memory: the test client's own encoder spools big bodies to a temp
    file it never closes (a ResourceWarning, which this suite treats as an error)."""
    boundary, body = encode_multipart({"logo": FileStorage(io.BytesIO(data), filename)})
    return http.post("/admin/settings/logo", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def uploads(app) -> Path:
    return Path(app.instance_path) / "uploads"


def test_save_settings(admin, session):
    response = admin.post("/admin/settings", data=SETTINGS)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/settings"
    session.expire_all()
    s = get_settings(session)
    assert (s.name, s.legal_name, s.email, s.reply_to, s.currency, s.default_net_days) == (
        "Bright IT", "Bright IT Services LLC", "billing@bright.test", "ar@bright.test", "CAD", 45)
    assert s.payment_instructions == "Checks payable to Bright IT Services LLC."
    shown = page(admin.get("/admin/settings"))
    assert "Settings saved." in shown and 'value="Bright IT Services LLC"' in shown


def test_bad_settings_change_nothing(admin, session):
    for changes, message in [
        ({"name": " "}, "Enter your business name."),
        ({"default_net_days": "400"}, "Number must be between 0 and 365."),
        ({"default_net_days": ""}, "Enter the number of days."),
        ({"email": "billing at bright"}, "Enter a valid email address."),
        ({"website": "bright"}, "Enter a full address such as https://example.com."),
        ({"currency": "XYZ"}, "Not a valid choice."),
    ]:
        response = admin.post("/admin/settings", data={**SETTINGS, **changes})
        assert response.status_code == 200, changes
        assert message in page(response), changes
    session.expire_all()
    assert get_settings(session).name == "Your MSP"


def test_zero_net_days_is_allowed(admin, session):
    admin.post("/admin/settings", data={**SETTINGS, "default_net_days": "0"})
    session.expire_all()
    assert get_settings(session).default_net_days == 0


def test_logo_upload_and_public_serving(app, admin, http, session):
    response = upload(admin, PNG, "logo.png")
    assert response.status_code == 302
    session.expire_all()
    name = get_settings(session).logo_filename
    assert name and name.endswith(".png") and (uploads(app) / name).read_bytes() == PNG
    assert "Logo updated." in page(admin.get("/admin/settings"))

    admin.post("/logout")
    served = http.get("/admin/logo")  # signed out: sign-in pages show it too
    assert served.status_code == 200 and served.mimetype == "image/png" and served.data == PNG


def test_jpeg_replaces_the_old_logo(app, admin, session):
    upload(admin, PNG, "a.png")
    old = get_settings(session).logo_filename
    upload(admin, JPEG, "b.jpeg")
    session.expire_all()
    new = get_settings(session).logo_filename
    assert new.endswith(".jpg") and not (uploads(app) / old).exists()
    assert admin.get("/admin/logo").mimetype == "image/jpeg"


def test_bad_logos_are_rejected(app, admin, session):
    for data, filename, message in [
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "logo.png", "The logo must be a PNG or JPEG image."),
        (b"GIF89a" + b"\x00" * 20, "logo.gif", "The logo must be a PNG or JPEG image."),
        (PNG[:8] + b"\x00" * MAX_LOGO_BYTES, "big.png", "The logo must be 1 MB or smaller."),
    ]:
        response = upload(admin, data, filename)
        assert response.status_code == 200, filename
        assert message in page(response), filename
    no_file = admin.post("/admin/settings/logo", data={}, content_type="multipart/form-data")
    assert "Choose an image file." in page(no_file)
    session.expire_all()
    assert get_settings(session).logo_filename is None
    assert list(uploads(app).iterdir()) == []
    assert admin.get("/admin/logo").status_code == 404


def test_remove_logo(app, admin, session):
    upload(admin, PNG, "a.png")
    admin.post("/admin/settings/logo/remove")
    session.expire_all()
    assert get_settings(session).logo_filename is None and list(uploads(app).iterdir()) == []
    assert "Logo removed." in page(admin.get("/admin/settings"))
