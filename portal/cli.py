"""The `portal` command (a Flask CLI group). Commands are thin: parse options, call a service, report."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from portal import db


def main() -> None:
    from portal import create_app

    FlaskGroup(create_app=lambda: create_app(), help="MSP client payment portal.")(prog_name="portal")


@click.group("db", help="Database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply migrations up to the latest schema (run on every deploy).")
@with_appcontext
def db_upgrade() -> None:
    from flask import current_app

    from portal.migrate import upgrade

    upgrade(current_app._get_current_object())
    click.echo("Database is at the latest schema.")


@click.command("create-admin", help="Create a staff admin who signs in with email and password.")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.password_option(help="At least 12 characters.")
@with_appcontext
def create_admin(email: str, name: str, password: str) -> None:
    from portal.domain.errors import DomainError
    from portal.services.staff import create_staff

    try:
        user = create_staff(db.session(), email=email, name=name, password=password)
    except DomainError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Admin {user.email} created.")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(create_admin)
