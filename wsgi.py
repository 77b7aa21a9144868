"""`gunicorn wsgi:app`: configuration comes from PORTAL_* environment variables."""

import gc

from portal import create_app
from portal.services.staff import verify_password

app = create_app()
# The hash an unknown email is checked against is made here, before the first request, so the first sign-in with an
# unknown email takes as long as any other (made lazily, it would take twice as long, once per worker).
verify_password(None, "")
# What is built by now (the app, routes, models, forms: ~180,000 objects) lives as long as the worker. Frozen, it is
# left out of the garbage collector's full passes, which otherwise walk all of it (about 100 ms, every few dozen
# requests of a busy page: a pause for whoever's request it lands on).
gc.freeze()
