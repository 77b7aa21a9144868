"""Helpers shared by the agreements views: the evidence metadata of the current request, PDF responses."""

from __future__ import annotations

import re
import secrets

from flask import Response, request
from flask import session as web_session
from flask_login import current_user

from portal.services.agreements import Meta

EVIDENCE_SESSION = "evidence_sid"


def request_meta() -> Meta:
    """IP, user agent and a random id for this browser session (the session cookie is signed, so the id cannot
    be forged; it is not a secret and grants nothing)."""
    sid = web_session.get(EVIDENCE_SESSION)
    if not isinstance(sid, str) or not re.fullmatch(r"[0-9a-f]{32}", sid):
        sid = secrets.token_hex(16)
        web_session[EVIDENCE_SESSION] = sid
    contact_id = current_user.record.id if current_user.is_authenticated and current_user.is_contact else None
    staff_id = current_user.record.id if current_user.is_authenticated and current_user.is_staff else None
    return Meta(ip=request.remote_addr or "", user_agent=request.user_agent.string or "", session_id=sid,
                contact_id=contact_id, staff_id=staff_id)


def pdf_response(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=re.sub(r"[^A-Za-z0-9._-]+", "_", filename))
    return response
