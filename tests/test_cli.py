"""The `portal` command as a newcomer first meets it: a fresh install, no PORTAL_* variables, no .env file.
Run as a real subprocess of the installed console script, so nothing from the test process leaks in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PORTAL = Path(sys.executable).parent / "portal"
OWN_COMMANDS = ("create-admin", "db", "demo", "import", "payments", "run-due")


@pytest.fixture
def fresh_install(tmp_path):
    """An environment with no portal configuration, in a folder with no .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    assert not (tmp_path / ".env").exists()

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(PORTAL), *args], cwd=tmp_path, env={**env, **extra_env}, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    run.folder = tmp_path
    return run


def test_help_lists_every_portal_command_without_configuration(fresh_install):
    result = fresh_install("--help")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    commands = result.stdout.split("Commands:")[1]
    for name in OWN_COMMANDS:
        assert f"\n  {name} " in commands
    assert list(fresh_install.folder.iterdir()) == []  # help wrote nothing (no instance folder, no demo key)


@pytest.mark.parametrize("args", [("create-admin", "--help"), ("demo", "--help"), ("import", "--help"),
                                  ("db", "upgrade", "--help"), ("payments", "reconcile", "--help"),
                                  ("run-due", "--help")])
def test_help_for_each_command_works_without_configuration(fresh_install, args):
    result = fresh_install(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.startswith(f"Usage: portal {' '.join(args[:-1])} [OPTIONS]")


def test_a_command_that_needs_the_app_names_the_missing_secret_in_one_line(fresh_install):
    result = fresh_install("create-admin", "--email", "ann@example.com", "--name", "Ann",
                           "--password", "a long enough password", PORTAL_ENV="production")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: PORTAL_SECRET_KEY is required")
    assert "set it in the environment or in a .env file" in lines[0]
    assert list(fresh_install.folder.iterdir()) == []


def test_a_bad_portal_env_is_one_clear_line_too(fresh_install):
    result = fresh_install("db", "upgrade", PORTAL_ENV="staging")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: PORTAL_ENV must be production, demo or test, not 'staging'; set it in the environment or in a "
        ".env file in the current folder."]
