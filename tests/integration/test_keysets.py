"""keysets.among on each database: one bound parameter for any number of keys (PostgreSQL: integer ids as an
array's text, text keys as JSON; SQLite: JSON), matching what ``IN`` would."""

from __future__ import annotations

from sqlalchemy import select

from portal.models import Invoice
from portal.services.keysets import among


def test_among_matches_integer_ids_and_text_keys_as_in_would(session, make):
    client = make.client()
    first, second, third = (make.invoice(client, 100) for _ in range(3))

    def ids(column, values) -> set[int]:
        return set(session.scalars(select(Invoice.id).where(among(session, column, values))))

    assert ids(Invoice.id, [first.id, third.id]) == {first.id, third.id}
    assert ids(Invoice.id, iter([second.id, second.id])) == {second.id}  # any iterable, repeats harmless
    assert ids(Invoice.id, [first.id, None]) == {first.id}  # an unsaved row's id matches nothing, as in IN
    assert ids(Invoice.id, []) == set()
    assert ids(Invoice.id, [10**9]) == set()
    assert ids(Invoice.number, [second.number, "INV-NONE", "it's \"quoted\", {braced}"]) == {second.id}
    assert ids(Invoice.client_id, {client.id: "a mapping's keys"}) == {first.id, second.id, third.id}
