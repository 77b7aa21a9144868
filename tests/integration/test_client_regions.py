"""A client's billing state is stored as its code whatever was typed (admin form, import, API all go through the
clients service), so rules keyed on the state apply."""

from portal.services import clients


def test_a_state_name_is_stored_as_its_code(session):
    client = clients.create_client(session, legal_name="Harbor Dental", region="Connecticut")
    assert client.region == "CT"
    clients.update_client(session, client, region=" new york ")
    session.expire_all()
    assert client.region == "NY"
    clients.update_client(session, client, region="Ontario")
    assert client.region == "Ontario"
