"""The `warmline` command line.

`warmline up` is the one-command local run: it migrates the database, then starts the sandbox
providers, the web server (gunicorn), a real Celery worker and the beat scheduler as child
processes, each in its own session so a terminal Ctrl-C reaches only this supervisor, which then
stops the children in order and waits for them. If any child dies, everything stops, and the
exit status says so: a half-running Warmline is worse than a stopped one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import click

import migrations
from core.runtime import prepare_data_dir
from core.settings import Settings

STOP_TIMEOUT_S = 15.0
# The OAuth client the sandbox accepts out of the box (sandbox/state.py); not a secret.
SANDBOX_CLIENT_ID = "warmline-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise click.ClickException(f"invalid configuration: {exc}") from exc


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@click.group()
def cli() -> None:
    """Warmline: relationship context for your email sidebar."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""
    settings = _settings()
    prepare_data_dir(settings)
    migrations.upgrade(settings.effective_database_url)
    revision = migrations.current_revision(settings.effective_database_url)
    click.echo(f"database at revision {revision}")


@db.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    settings = _settings()
    current = migrations.current_revision(settings.effective_database_url)
    click.echo(f"current: {current}  head: {migrations.head_revision()}")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Recompute every contact from scratch.")
@click.option("--user", "email", default=None, help="Only this user (their sign-in address).")
def derive(rebuild: bool, email: str | None) -> None:
    """Bring derived contacts up to date (all of them with --rebuild)."""
    from sqlalchemy import select

    from core.db import make_engine, make_session_factory, transaction, utcnow
    from core.derive import dirty, rebuild_user
    from core.models import User

    settings = _settings()
    factory = make_session_factory(make_engine(settings.effective_database_url))
    with factory() as session:
        query = select(User.id, User.email)
        if email:
            query = query.where(User.email == email.lower())
        users = list(session.execute(query))
    if email and not users:
        raise click.ClickException(f"no user signed in as {email}")
    started = time.monotonic()
    for user_id, user_email in users:
        with transaction(factory) as session:
            if rebuild:
                result = rebuild_user(session, user_id=user_id, now=utcnow())
            else:
                result = dirty.drain(session, user_id=user_id, now=utcnow(), limit=1_000_000)
        click.echo(
            f"{user_email}: {result.contacts_written} contacts written, "
            f"{result.contacts_deleted} removed"
        )
    click.echo(f"done in {time.monotonic() - started:.1f}s")


@cli.group()
def keys() -> None:
    """Encryption keys for tokens at rest."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored token under a new key, with no downtime.

    Embedded default (no WARMLINE_ENCRYPTION_KEYS): a new key is generated and put first in the
    key file, then everything is re-encrypted; running processes pick the new key up from the
    file. With WARMLINE_ENCRYPTION_KEYS: put the new key first there and restart the processes
    first; this command then re-encrypts everything under it.
    """
    from core import keys as key_store
    from core.db import make_engine, make_session_factory
    from core.runtime import load_secrets, make_vault

    settings = _settings()
    prepare_data_dir(settings)
    if settings.encryption_keys is None:
        current = list(load_secrets(settings).encryption_keys)
        key_store.write_key_file(
            settings.keys_dir / "encryption_keys", [key_store.new_key(), *current]
        )
        click.echo("generated a new key and put it first in the key file")
    factory = make_session_factory(make_engine(settings.effective_database_url))
    count = key_store.rotate_all(factory, vault=make_vault(settings))
    click.echo(f"re-encrypted {count} secret(s) under the newest key")


@keys.command("retire")
def keys_retire() -> None:
    """Drop every key but the newest, once nothing needs the old ones."""
    from core import keys as key_store
    from core.db import make_engine, make_session_factory
    from core.runtime import load_secrets, make_vault

    settings = _settings()
    factory = make_session_factory(make_engine(settings.effective_database_url))
    stale = key_store.count_stale(factory, vault=make_vault(settings))
    if stale:
        raise click.ClickException(f"{stale} secret(s) still use an old key: run `keys rotate`")
    if settings.encryption_keys is not None:
        click.echo("nothing uses the old keys: remove them from WARMLINE_ENCRYPTION_KEYS")
        return
    newest = load_secrets(settings).encryption_keys[0]
    key_store.write_key_file(settings.keys_dir / "encryption_keys", [newest])
    click.echo("old keys removed from the key file")


@cli.command()
@click.option("--workers", type=int, default=None, help="gunicorn workers (default: settings).")
def serve(workers: int | None) -> None:
    """Run the web server (applies pending migrations first)."""
    settings = _settings()
    _configure_logging(settings)
    prepare_data_dir(settings)
    migrations.upgrade(settings.effective_database_url)
    from server.gunicorn import run

    run(settings, workers=workers or settings.web_workers)


@cli.command()
def worker() -> None:
    """Run a Celery worker process for Warmline's tasks."""
    settings = _settings()
    _configure_logging(settings)
    from workers.app import create_worker_app

    app = create_worker_app(settings)
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            "--pool=prefork",
            "--without-mingle",
            "--without-gossip",
        ]
    )


@cli.command()
def beat() -> None:
    """Run the beat scheduler (exactly one per deployment)."""
    settings = _settings()
    _configure_logging(settings)
    from workers.app import create_worker_app

    app = create_worker_app(settings)
    sys.exit(app.start(["beat", f"--loglevel={settings.log_level}"]) or 0)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """Run the sandbox Google and Microsoft providers (see `warmline sandbox --help`)."""
    from sandbox.__main__ import main as sandbox_main

    sys.exit(sandbox_main(list(ctx.args)) or 0)


@cli.command()
@click.option("--no-sandbox", is_flag=True, help="Do not start the sandbox providers.")
def up(no_sandbox: bool) -> None:
    """Start everything for a local run: sandbox, web server, worker and beat."""
    settings = _settings()
    _configure_logging(settings)
    prepare_data_dir(settings)
    migrations.upgrade(settings.effective_database_url)

    me = [sys.executable, "-m", "server.cli"]
    plan: list[tuple[str, list[str]]] = []
    if not no_sandbox:
        plan.append(
            (
                "sandbox",
                [
                    *me,
                    "sandbox",
                    "--data-dir",
                    str(settings.data_dir / "sandbox"),
                    "--http-port",
                    str(settings.sandbox_http_port),
                    "--https-port",
                    str(settings.sandbox_https_port),
                    "--demo",
                ],
            )
        )
    plan += [("web", [*me, "serve"]), ("worker", [*me, "worker"]), ("beat", [*me, "beat"])]
    env = dict(os.environ)
    if not no_sandbox:
        for name, value in sandbox_provider_env(settings).items():
            env.setdefault(name, value)  # the user's own configuration wins
    Supervisor(plan, env=env).run(ready_url=f"{settings.effective_public_url}/readyz")


def sandbox_provider_env(settings: Settings) -> dict[str, str]:
    """Provider settings that point Warmline at the sandbox `warmline up` starts.

    Google is reached over plain http on loopback, Microsoft over the sandbox's HTTPS listener
    (msal requires an https authority), trusting the CA the sandbox generated.
    """
    http = f"http://127.0.0.1:{settings.sandbox_http_port}"
    https = f"https://127.0.0.1:{settings.sandbox_https_port}"
    return {
        "WARMLINE_GOOGLE_CLIENT_ID": SANDBOX_CLIENT_ID,
        "WARMLINE_GOOGLE_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "WARMLINE_GOOGLE_AUTH_URI": f"{http}/o/oauth2/v2/auth",
        "WARMLINE_GOOGLE_TOKEN_URI": f"{http}/token",
        "WARMLINE_GOOGLE_REVOKE_URI": f"{http}/revoke",
        "WARMLINE_GOOGLE_CERTS_URI": f"{http}/oauth2/v1/certs",
        "WARMLINE_GOOGLE_GMAIL_API_ROOT": f"{http}/",
        "WARMLINE_GOOGLE_CALENDAR_API_ROOT": f"{http}/",
        "WARMLINE_MICROSOFT_CLIENT_ID": SANDBOX_CLIENT_ID,
        "WARMLINE_MICROSOFT_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "WARMLINE_MICROSOFT_AUTHORITY": f"{https}/common",
        "WARMLINE_MICROSOFT_GRAPH_ROOT": f"{https}/v1.0",
        "WARMLINE_PROVIDER_CA_BUNDLE": str(settings.data_dir / "sandbox" / "tls" / "ca.pem"),
    }


class Supervisor:
    """Start child processes, stop them all on Ctrl-C/SIGTERM or when one of them dies."""

    def __init__(self, plan: Sequence[tuple[str, list[str]]], *, env: dict[str, str]) -> None:
        self.plan = plan
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False

    def run(self, *, ready_url: str) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for name, argv in self.plan:
            # A session of its own: a terminal's Ctrl-C reaches only the supervisor.
            child = subprocess.Popen(argv, env=self.env, start_new_session=True)
            self.children.append((name, child))
        status = 0
        announced = False
        while not self.stopping:
            for name, child in self.children:
                if child.poll() is not None:
                    click.echo(f"warmline: {name} exited with status {child.returncode}", err=True)
                    status = 1
                    self.stopping = True
            if not announced and not self.stopping and _answers(ready_url):
                announced = True
                base = ready_url.removesuffix("/readyz")
                click.echo(f"warmline: ready at {base}  (Ctrl-C stops)")
            time.sleep(0.5)
        self.stop()
        sys.exit(status)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def stop(self) -> None:
        # Reverse order: beat and worker stop before the web server and the sandbox they use.
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, child in reversed(self.children):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                click.echo(f"warmline: {name} did not stop in time; killing it", err=True)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        click.echo("warmline: stopped")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own URL)
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="warmline")


if __name__ == "__main__":
    main()
