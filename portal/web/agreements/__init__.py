"""Agreements: the contact signing flow, the public verification page and the staff pages for terms."""
