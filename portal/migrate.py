"""Alembic, driven from the app config so `portal db upgrade` and tests use the same database URL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from flask import Flask

from portal import ROOT

MIGRATIONS = ROOT / "migrations"


def alembic_config(app: Flask) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", app.config["DATABASE_URL"].replace("%", "%%"))
    cfg.attributes["engine"] = app.extensions["db_engine"]
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    command.upgrade(alembic_config(app), revision)
