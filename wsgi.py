"""`gunicorn wsgi:app`: configuration comes from PORTAL_* environment variables."""

from portal import create_app

app = create_app()
