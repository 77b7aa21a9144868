"""Pages show the MSP's settings from a per-process copy (issue 14): a save in this process shows at once, a save
made by another process (another gunicorn worker, another node) shows once the copy expires."""

from __future__ import annotations

import multiprocessing

from portal.services.settings import update_settings


def _save_name_elsewhere(config: dict, name: str) -> None:
    """Another worker: its own interpreter and app, sharing nothing with the test but the database."""
    from portal import create_app, db

    app = create_app(config)
    with app.app_context():
        update_settings(db.session(), name=name)
    app.extensions["db_engine"].dispose()


def _in_another_process(config: dict, name: str) -> None:
    worker = multiprocessing.get_context("spawn").Process(target=_save_name_elsewhere, args=(config, name))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_save_by_another_worker_shows_when_the_copy_expires(app, app_config, session, http):
    update_settings(session, name="Harbor IT")
    cache = app.extensions["settings_cache"]
    cache.clock = clock = Clock()
    assert "Harbor IT" in http.get("/login").text  # read and copied

    _in_another_process(app_config, "Summit Managed Services")

    assert "Harbor IT" in http.get("/login").text  # the copy is younger than the expiry: no database read
    clock.now += cache.seconds
    page = http.get("/login").text
    assert "Summit Managed Services" in page and "Harbor IT" not in page


def test_a_save_in_this_process_shows_at_once_in_every_app(app, app_config, session, http):
    from portal import create_app

    other = create_app(app_config)  # a second app in this process, its copy already made
    other_http = other.test_client()
    update_settings(session, name="Harbor IT")
    assert "Harbor IT" in http.get("/login").text and "Harbor IT" in other_http.get("/login").text

    update_settings(session, name="Cedar IT")  # no clock moves: the copies are replaced because of the save

    assert "Cedar IT" in http.get("/login").text
    assert "Cedar IT" in other_http.get("/login").text
    other.extensions["db_engine"].dispose()


def test_zero_seconds_reads_the_row_every_time(app_config, session):
    from portal import create_app

    app = create_app({**app_config, "SETTINGS_CACHE_SECONDS": 0})
    http = app.test_client()
    update_settings(session, name="Harbor IT")
    assert "Harbor IT" in http.get("/login").text
    _in_another_process(app_config, "Summit Managed Services")
    assert "Summit Managed Services" in http.get("/login").text
    app.extensions["db_engine"].dispose()
