"""The `portal` command (a Flask CLI group). Commands are thin: parse options, call a service, report."""

from __future__ import annotations

import gc
import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import click
from dotenv import load_dotenv
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.orm import Session

from portal import ROOT, db


def main() -> None:
    if sys.argv[1:2] == ["demo"]:
        # `portal demo` means demo mode, decided before create_app reads the config. A PORTAL_ENV set in the
        # environment or .env still wins, and the demo command then refuses to run outside demo mode.
        load_dotenv(ROOT / ".env", override=False)
        os.environ.setdefault("PORTAL_ENV", "demo")
    group = PortalGroup(create_app=_create_app, help="MSP client payment portal.")
    for command in COMMANDS:
        group.add_command(command)
    group(prog_name="portal")


class PortalGroup(FlaskGroup):
    """The portal's commands are registered on the group itself, so listing them and showing their help never
    builds the app: a fresh install with no configuration can explore the CLI. The app is built only when a
    command that needs it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # FlaskGroup would build the app here to list the commands it adds, and print a traceback when the
        # configuration is incomplete; the portal's own and Flask's built-in commands are enough for --help.
        self._load_plugin_commands()
        return sorted(click.Group.list_commands(self, ctx))


def _create_app() -> Flask:
    from portal import create_app
    from portal.config import ConfigError

    try:
        app = create_app()
    except ConfigError as e:
        # one line that says what is missing and how to set it, not a traceback
        raise click.ClickException(f"{e}; set it in the environment or in a .env file in the current folder.") \
            from None
    # What is built by now (the app, models, mappers, forms: ~180,000 objects) lives as long as the command. Frozen,
    # it is left out of the garbage collector's passes, which otherwise walk all of it again and again while a long
    # command allocates: a third of a re-import's time went there. wsgi.py does the same for a web worker.
    gc.freeze()
    return app


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


@click.command("import", help="Import clients, contacts and open invoices from a CSV export "
                         "(columns: docs/import-format.md). Exits 1 when a line could not be imported.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Import nothing unless every line is good.")
@click.option("--dry-run", is_flag=True, help="Check the file and report what would change; save nothing.")
@click.option("--progress-every", default=10_000, show_default=True, type=click.IntRange(1),
              help="Report progress every N lines.")
@with_appcontext
def import_command(path: Path, strict: bool, dry_run: bool, progress_every: int) -> None:
    from portal.domain.imports import HeaderError
    from portal.services.importer import import_csv

    click.echo(f"Importing {path.name}" + (" (dry run)" if dry_run else "") + (" (strict)" if strict else ""))
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        size = path.stat().st_size or 1
        try:
            report = import_csv(
                db.session(), text, strict=strict, dry_run=dry_run, progress_every=progress_every,
                on_progress=lambda n: click.echo(f"  {n:,} lines read ({min(100, raw.tell() * 100 // size)}%)",
                                                 err=True),
            )
        except HeaderError as e:
            raise click.ClickException(f"line 1: {e}") from None
    _print_import_report(report)
    if report.failed:
        raise SystemExit(1)


def _print_import_report(report, shown: int = 200) -> None:
    for issue in report.issues[:shown]:
        kind = "conflict: " if issue.kind == "conflict" else ""
        click.echo(f"line {issue.line}: {kind}{issue.message}", err=True)
    if len(report.issues) > shown:
        click.echo(f"... and {len(report.issues) - shown} more problems", err=True)
    if report.ignored_columns:
        click.echo("Ignored columns: " + ", ".join(report.ignored_columns))
    if report.marked_paid:
        lines = ", ".join(map(str, report.marked_paid[:10])) + (", ..." if len(report.marked_paid) > 10 else "")
        click.echo(f"{len(report.marked_paid)} line(s) marked paid were imported as open (lines {lines}): "
                   "record the payments to close them.")
    click.echo(f"{report.summary()} ({report.rows} lines; {len(report.errors)} errors, "
               f"{len(report.conflicts)} conflicts).")
    click.echo(f"Clients: {report.clients_created} created, {report.clients_updated} updated. "
               f"Contacts: {report.contacts_added} added.")
    if report.dry_run:
        click.echo("Dry run: nothing was saved.")
    elif report.strict and not report.saved:
        click.echo(f"Strict: nothing was imported because {report.failed} line(s) failed.")


@click.command("demo", help="Seed a demo MSP (two dozen clients, half a year of invoices) and serve it locally.")
@click.option("--reset", is_flag=True, help="Erase the demo database first and seed it again.")
@click.option("--no-serve", is_flag=True, help="Seed only; do not start the web server.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@with_appcontext
def demo_command(reset: bool, no_serve: bool, port: int) -> None:
    from flask import current_app

    from portal.domain.errors import DomainError
    from portal.migrate import upgrade
    from portal.services import demo

    app = current_app._get_current_object()
    if app.config["ENV"] not in ("demo", "test"):
        raise click.ClickException(f"portal demo runs in demo mode only, and PORTAL_ENV is {app.config['ENV']!r} "
                                   "(from the environment or .env). Use PORTAL_ENV=demo with an empty database.")
    base_url = f"http://127.0.0.1:{port}"
    if app.config["BASE_URL"] == "http://127.0.0.1:5000":  # the default: links in emails follow --port
        from portal.web import runtime

        app.config["BASE_URL"] = base_url
        runtime.init_app(app)  # the Runtime builds links from BASE_URL: build it again for the new port
    try:
        if reset:
            demo.reset_database(app.extensions["db_engine"])
        upgrade(app)
        summary = demo.seed_demo(db.session(), app.extensions["runtime"], open_session=worker_sessions(app))
    except DomainError as e:
        raise click.ClickException(str(e)) from None
    state = "seeded" if summary.seeded else "kept (use --reset to start again)"
    click.echo(f"Demo data {state}: {summary.clients} clients, {summary.invoices} invoices, "
               f"{summary.payments} payments.")
    click.echo(f"Staff sign-in:  {base_url}/admin/login  {summary.admin_email} / {summary.admin_password}")
    mail = app.config.get("SMTP_URL") or str(Path(app.instance_path) / "outbox")
    click.echo(f"Client sign-in: {base_url}/login  enter {summary.contact_email}; the sign-in link is emailed "
               f"to {mail} (newest .eml file).")
    db.session().close()
    if not no_serve:
        from werkzeug.serving import run_simple

        # app.run() is a no-op inside a Flask CLI command, so serve directly: threaded, no debugger or reloader.
        click.echo(f"Serving on {base_url} (Ctrl+C to stop)")
        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False, use_debugger=False)


@click.group("payments", help="Online payments.")
def payments_group() -> None:
    pass


@payments_group.command("reconcile", help="Ask the payment gateway about every online payment still pending or "
                                          "unknown (missed webhooks) and settle it. Safe to run any time, e.g. from "
                                          "cron. Exits 1 when the gateway could not be asked about some of them.")
@with_appcontext
def payments_reconcile() -> None:
    from portal.services.payments import reconcile
    from portal.web.runtime import runtime

    rt = runtime()
    gateway = rt.gateway
    click.echo(f"Reconciling online payments with {'the SANDBOX gateway' if gateway.is_sandbox else gateway.name}")
    report = reconcile(db.session(), rt,
                       on_progress=lambda n, total: click.echo(f"  {n}/{total} checked", err=True) if n % 50 == 0
                       else None)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"{report.checked} checked, {report.changed} changed, {report.settled} settled, "
               f"{report.still_open} still open.")
    if report.problems:
        raise SystemExit(1)


def worker_sessions(app: Flask) -> Callable[[], AbstractContextManager[Session]]:
    """`run-due`'s ``open_session``: each worker thread gets its own app context, so its own session (and the clock)."""

    @contextmanager
    def worker_session() -> Iterator[Session]:
        with app.app_context():
            yield db.write_session()

    return worker_session


@click.command("run-due", help="Everything time-driven, in order: settle pending payments, autopay charges and "
                             "retries, pre-charge notices, expiring-card emails, terms reminders. Run it from cron "
                             "every few minutes, on any number of nodes. Exits 1 when something needs attention.")
@click.option("--grace-seconds", default=120, show_default=True, type=click.IntRange(0),
              help="Leave charges younger than this to the process that started them (a run killed mid-charge is "
                   "replayed, with the same idempotency key, once they are older).")
@with_appcontext
def run_due_command(grace_seconds: int) -> None:
    import logging
    from datetime import timedelta

    from flask import current_app

    from portal.services.due import run_due
    from portal.web.runtime import runtime

    app = current_app._get_current_object()
    bars: dict[str, object] = {}
    interactive = sys.stdout.isatty()

    def progress(step: str, n: int, total: int) -> None:
        if not interactive:
            return
        bar = bars.get(step)
        if bar is None:
            bar = bars[step] = click.progressbar(length=total, label=f"  {step}")
            bar.__enter__()
        bar.update(1)
        if n == total:
            bar.__exit__(None, None, None)

    report = run_due(db.write_session(), runtime(), open_session=worker_sessions(app),
                     grace=timedelta(seconds=grace_seconds),
                     on_step=(lambda name: click.echo(f"{name}...")) if interactive else None, on_progress=progress)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(report.summary())
    logging.getLogger("portal.run_due").info(report.summary())
    if report.needs_attention:
        raise SystemExit(1)


COMMANDS = (payments_group, db_group, create_admin, import_command, demo_command, run_due_command)


def init_app(app: Flask) -> None:
    # also on app.cli, for app.test_cli_runner() and for `flask --app wsgi ...`
    for command in COMMANDS:
        app.cli.add_command(command)
