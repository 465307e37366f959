"""The ``deptflow`` command: init, deploy, worker, serve, audit verify.

``init`` is the one command that creates or upgrades a database; the others refuse, in one line
on stderr and with exit status 2, a database that is missing or not at the current schema.
Exit status 1 means "not done" (a diagram not deployed, a broken audit chain)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url

from engine import directory, schema
from engine.core import WorkflowEngine
from engine.db import ProcessDefinition, database_url, make_engine
from engine.errors import InvalidDefinition, InvalidForm
from workflows import setup

if TYPE_CHECKING:
    from engine.decisions import Decisions


def _require_database() -> str:
    """The configured database URL, once the database is known to exist at the current schema;
    otherwise say why in one line and exit 2, having created nothing."""
    url = database_url()
    problem = schema.problem(url)
    if problem:
        click.echo(f"deptflow: {problem}", err=True)
        sys.exit(2)
    return url


def _sessions():
    """The database engine and the sessions of the engine object (with the configured audit key)."""
    from engine.audit_signing import key_path

    url = _require_database()
    engine = make_engine(url)
    return engine, WorkflowEngine(audit_key=key_path(url)).session_factory(engine)


@click.group()
def main() -> None:
    """deptflow: BPMN workflows for marketing and sales departments."""


@main.command()
@click.option("--demo", is_flag=True, help="Also create the demo organisation (one user per role) and, in an "
              "empty database, a few demo cases.")
@click.option("--no-cases", is_flag=True, help="With --demo: users only, no demo cases.")
@click.option("--admin", "admin", metavar="USERNAME", help="Create the first administrator (password from "
              "DEPTFLOW_ADMIN_PASSWORD or a prompt).")
def init(demo: bool, no_cases: bool, admin: str | None) -> None:
    """Create or upgrade the database and install the shipped processes (idempotent)."""
    from engine.audit_signing import key_path

    url = database_url()
    credentials = (admin, _password("DEPTFLOW_ADMIN_PASSWORD")) if admin else None
    try:
        report = setup.initialise(url, demo=demo, cases=not no_cases, audit_key=key_path(url), admin=credentials)
    except InvalidForm as exc:
        _refuse(exc)
    for line in report:
        click.echo(line)
    click.echo(f"database ready: {make_url(url).render_as_string(hide_password=True)}")


def _password(variable: str) -> str:
    """A password from the environment variable, else typed twice at a prompt (never an argument: it
    would show in the process list and the shell history)."""
    return os.environ.get(variable) or click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _refuse(exc: InvalidForm) -> None:
    """Say per field why the engine refused, and exit 1 (nothing was saved)."""
    for field_name, message in exc.errors.items():
        click.echo(f"{field_name}: {message}", err=True)
    sys.exit(1)


def _admin_action(action, *args, **kwargs):
    """Run one engine call as the operator at the console and commit it; a refusal exits 1."""
    from engine.errors import NotFound

    engine, sessions = _sessions()
    try:
        with sessions() as session:
            try:
                result = action(session, None, *args, **kwargs)
                session.commit()
            except InvalidForm as exc:
                session.rollback()
                _refuse(exc)
            except NotFound as exc:
                session.rollback()
                click.echo(str(exc), err=True)
                sys.exit(1)
            return result
    finally:
        engine.dispose()


def _user_id(username: str) -> int:
    from engine import users

    engine, sessions = _sessions()
    try:
        with sessions() as session:
            user = users.user_by_name(session, username.strip().lower())
    finally:
        engine.dispose()
    if user is None:
        click.echo(f"There is no user {username}.", err=True)
        sys.exit(1)
    return user.id


@main.group()
def user() -> None:
    """Users: add, set a password, deactivate (for scripts; the web pages do the same)."""


@user.command("add")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="full name")
@click.option("--email", default="", help="e-mail address (needed for --send-link)")
@click.option("--role", "role_keys", multiple=True, help="role key (repeat for several)")
@click.option("--send-link", is_flag=True, help="mail a set-password link instead of setting a password "
              "(password otherwise from DEPTFLOW_USER_PASSWORD or a prompt)")
def user_add(username: str, full_name: str, email: str, role_keys: tuple[str, ...], send_link: bool) -> None:
    """Create a user with a password, or with a set-password link mailed through the outbox."""
    from engine import people

    _require_database()
    password = None if send_link else _password("DEPTFLOW_USER_PASSWORD")
    created = _admin_action(people.create_user, username, full_name, email, role_keys=list(role_keys),
                            password=password, send_link=send_link)
    how = "set-password link queued for " + email if send_link else "password set"
    click.echo(f"user {created.user.username} created ({how})")


@user.command("set-password")
@click.argument("username")
def user_set_password(username: str) -> None:
    """Set a user's password (from DEPTFLOW_USER_PASSWORD or a prompt); their sessions end."""
    from engine import people

    user_id = _user_id(username)
    _admin_action(people.set_password, user_id, _password("DEPTFLOW_USER_PASSWORD"))
    click.echo(f"password of {username} set; their sessions ended")


@user.command("deactivate")
@click.argument("username")
def user_deactivate(username: str) -> None:
    """Deactivate a user: their sessions end and the tasks they hold go back to their roles' queues."""
    from engine import people

    _admin_action(people.deactivate, _user_id(username))
    click.echo(f"user {username} deactivated")


@main.group()
def role() -> None:
    """Roles (for scripts; the web pages do the same)."""


@role.command("add")
@click.argument("key")
@click.option("--name", required=True, help="display name (lane names match it)")
@click.option("--description", default="")
@click.option("--permission", "permissions", multiple=True,
              help="administer, audit, model, read_all_cases, statistics or external_worker (repeat for several)")
@click.option("--manager", "manager_role", default=None, help="key of the role that manages this one")
def role_add(key: str, name: str, description: str, permissions: tuple[str, ...], manager_role: str | None) -> None:
    """Create a role; its key stays fixed."""
    from engine import roles

    created = _admin_action(roles.create_role, key, name, description=description, permissions=list(permissions),
                            manager_role=manager_role)
    click.echo(f"role {created.key} created")


@main.group("map")
def map_() -> None:
    """Map what Camunda 7 diagrams name to deptflow: groups to roles, Java delegates to external task topics
    (for scripts; Admin → Groups and Admin → Java delegates do the same)."""


@map_.command("group")
@click.argument("group")
@click.argument("role_key", metavar="ROLE")
def map_group(group: str, role_key: str) -> None:
    """Map GROUP (a lane or candidate group that is no role) to the role ROLE."""
    from engine import groups

    mapping = _admin_action(groups.map_group, group, role_key)
    click.echo(f"group {mapping.group_id} → role {mapping.role_key}")


@map_.command("delegate")
@click.argument("delegate")
@click.argument("topic")
def map_delegate(delegate: str, topic: str) -> None:
    """Map DELEGATE (a camunda:class name or delegate expression) to the external task topic TOPIC."""
    from engine import delegates

    mapping = _admin_action(delegates.map_delegate, delegate, topic)
    click.echo(f"Java delegate {mapping.delegate} → external task topic {mapping.topic}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="Change note stored with the new version.")
def deploy(file: Path, note: str) -> None:
    """Validate FILE as the modeler does and publish it as the next version of its process; a DMN file
    publishes the next version of each of its decisions."""
    from engine import decisions, modeling

    engine, sessions = _sessions()
    with sessions() as session:
        try:
            if decisions.is_dmn_file(file.read_bytes()):
                rows = decisions.deploy_decisions(session, None, file.read_bytes(), note=note)
                session.commit()
                for row in rows:
                    click.echo(f"{row.decision_key}: version {row.version} ({row.sha256[:12]})")
                engine.dispose()
                return
            published = modeling.publish(session, None, file.read_bytes(), note=note, acknowledge_warnings=True)
        except InvalidDefinition as exc:
            click.echo(f"{file}: not deployed.", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(1)
        session.commit()
        for warning in published.report.warnings + published.report.notes:
            click.echo(f"  {warning}")
        for definition in published.definitions:
            click.echo(f"{definition.process_key}: version {definition.version} ({definition.sha256[:12]})")
    engine.dispose()


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Say of each FILE what runs as is, what needs mapping and what blocks, with element ids; deploy nothing.

    Roles are those of the configured database when it exists, else the demo organisation's. Exit status:
    0 when every file can be deployed, 1 when one cannot, 2 when one is not BPMN (or cannot be read).
    """
    from engine.errors import Problem
    from engine.validation import FileCheck, ValidationReport, check_file, files_resolver

    roles, published, decided = _check_roles(files)
    contents: dict[Path, bytes | OSError] = {}
    for file in files:
        try:
            contents[file] = file.read_bytes()
        except OSError as exc:
            contents[file] = exc
    # a call activity may name a process of another file checked together, or one already published
    resolve = files_resolver({str(f): c for f, c in contents.items() if isinstance(c, bytes)}, published)
    worst, deploys = 0, 0
    for file in files:
        try:
            content = contents[file]
            if isinstance(content, OSError):
                raise content
            result = check_file(content, roles, resolve, decided)
        except OSError as exc:
            result = FileCheck("not BPMN", [], ValidationReport(None, None, [Problem(f"cannot read: {exc.strerror}")]))
        worst, deploys = max(worst, result.exit_code), deploys + (result.verdict == "deploys")
        click.echo(f"{file}: {result.verdict}")
        if result.verdict == "deploys":
            click.echo("  runs as is: " + ", ".join(f"{key} ({name})" for key, name in result.processes))
        for heading, problems in (("needs mapping", result.needs_mapping), ("blocks", result.blocks),
                                  ("warning", result.report.warnings), ("note", result.report.notes)):
            for problem in problems:
                where = f"[{problem.element_id}] " if problem.element_id else ""
                click.echo(f"  {heading}: {where}{problem.message}")
    click.echo(f"{deploys} of {len(files)} file{'s' if len(files) != 1 else ''} can be deployed")
    sys.exit(worst)


def _check_roles(files: tuple[Path, ...]) -> tuple[dict[str, str], Callable[[Any], Any] | None, Decisions]:
    """The configured database's roles, published processes and decisions when it is there at the current
    schema, else the demo organisation's roles, no published process and no decisions; the decisions of the DMN
    files checked with them."""
    from engine import decisions, definitions
    from workflows.catalogue import ROLES

    dmn = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if decisions.is_dmn_file(data):
            dmn.append(data)
    url = database_url()
    if schema.problem(url) is None:
        engine, sessions = _sessions()
        with sessions() as session:
            roles = definitions.known_roles(session)
            decided = decisions.with_files(session, dmn)
            published = {}  # called process binding → what the database answered, read while it is open
            for row in session.scalars(select(ProcessDefinition).where(ProcessDefinition.status == "published")):
                published.setdefault(row.process_key, []).append(
                    (row.id, row.version, definitions.version_tag(row.xml, row.bpmn_process_id)))
        engine.dispose()
        return roles, _published_resolver(published), decided
    return {role.key: role.name for role in ROLES}, None, decisions.with_files(None, dmn)


def _published_resolver(published: dict[str, list[tuple[int, int, str | None]]]) -> Callable[[Any], Any]:
    """Finds called processes among the published versions read from the database (newest first)."""
    def resolve(binding: Any) -> tuple[int, int] | str:
        for definition_id, version, tag in sorted(published.get(binding.process_id, []), key=lambda r: -r[1]):
            if binding.mode == "latest" or (binding.mode == "version" and str(version) == binding.value) or (
                    binding.mode == "versionTag" and tag == binding.value):
                return definition_id, version
        return "it is not published: publish it first"
    return resolve


@main.command()
@click.option("--interval", default=0.2, show_default=True, type=float, help="seconds between polls")
def worker(interval: float) -> None:
    """Fire due timers, send reminders and e-mail (run one or more beside the web servers)."""
    from engine.notify import SmtpSettings
    from engine.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    engine, sessions = _sessions()
    runner = Worker(sessions, interval=interval, smtp=SmtpSettings.from_environment())
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run()
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
@click.option("--no-worker", is_flag=True, help="do not fire timers here (run `deptflow worker` instead)")
@click.option("--demo", is_flag=True, help="demo mode: a random session key when DEPTFLOW_SECRET_KEY is unset")
def serve(host: str, port: int, workers: int, threads: int, no_worker: bool, demo: bool) -> None:
    """Serve the web front end with gunicorn, and run the timer worker beside it."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from web import create_app

    if not os.environ.get("DEPTFLOW_SECRET_KEY") and not demo:
        raise click.UsageError("DEPTFLOW_SECRET_KEY is not set. Set it to a long random value, "
                               "or use --demo for a throw-away key.")
    try:
        directory.settings_from_environ()
    except (directory.DirectoryMisconfigured, ValueError) as exc:
        raise click.UsageError(f"Directory login is misconfigured: {exc}") from exc
    _require_database()
    if not os.environ.get("DEPTFLOW_SECRET_KEY"):
        # One key for all workers, so a login is valid whichever worker serves the next request.
        os.environ["DEPTFLOW_SECRET_KEY"] = secrets.token_hex(32)
        click.echo("demo mode: a random session key; logins end when the server stops.")

    if not _port_is_free(host, port):
        raise click.ClickException(f"{host}:{port} is in use (another deptflow serve?); choose another --port.")
    timer_worker: list[subprocess.Popen] = []

    def start_timer_worker(_arbiter) -> None:
        if not no_worker:  # a process of its own: threads must not cross gunicorn's fork
            timer_worker.append(subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "worker"]))

    def stop_timer_worker(_arbiter) -> None:
        for process in timer_worker:
            process.terminate()
            process.wait(timeout=10)

    address = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    class _Log(Logger):
        """With ``reuse_port`` recent gunicorn (27 here) binds a socket in each worker and none in the
        arbiter, whose start-up line then names no address ("Listening at:  (pid)"): name it."""

        def info(self, msg, *args, **kwargs):
            if msg.startswith("Listening at:") and args and not args[0]:
                args = (address, *args[1:])
            super().info(msg, *args, **kwargs)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("reuse_port", True)  # spread keep-alive connections over the workers
            self.cfg.set("accesslog", "-")
            self.cfg.set("logger_class", _Log)
            self.cfg.set("when_ready", start_timer_worker)
            self.cfg.set("on_exit", stop_timer_worker)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: one socket per user otherwise
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return create_app()

    click.echo(f"deptflow serving on {address}")
    _Server().run()


def _port_is_free(host: str, port: int) -> bool:
    """gunicorn binds with ``reuse_port`` (to spread connections over its workers), which would let a
    second server share a busy port without a word; a plain bind first finds out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@main.group("dashboard")
def dashboard_group() -> None:
    """The dashboard's kept sums of the days and months that are over."""


@dashboard_group.command("reseal")
def dashboard_reseal() -> None:
    """Forget the kept sums and add up the last 13 weeks' days and the last 400 days' months again (after rows were
    changed by hand or a backup was restored); anything else is added up again when first asked for."""
    from engine import dashboard, rollups

    engine, sessions = _sessions()
    with sessions() as session:
        forgotten = rollups.forget(session)
        sealed = dashboard.seal_recent(session)
    engine.dispose()
    click.echo(f"forgot {forgotten} sealed days and months; sealed {sealed} again")


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--checkpoints", "checkpoint_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="checkpoint file(s) from `deptflow audit checkpoint`: each chain must still pass through them")
@click.argument("more", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def audit_verify(checkpoint_files: tuple[Path, ...], more: tuple[Path, ...]) -> None:
    """Walk the hash chains and check the heads' signatures, and every attachment's file against its
    hash; exit 1 and name the first bad event or the files that were changed. ``--checkpoints FILE
    [FILE...]`` also checks signed checkpoints."""
    from engine import attachments
    from engine import audit as audit_log
    from engine.audit_signing import CheckpointError, read_checkpoint

    if more and not checkpoint_files:
        raise click.UsageError(f"unexpected argument {more[0]} (checkpoint files follow --checkpoints)")
    try:
        checkpoints = [read_checkpoint(_read(path), str(path)) for path in (*checkpoint_files, *more)]
    except CheckpointError as exc:
        click.echo(str(exc))
        sys.exit(1)
    engine, sessions = _sessions()
    with sessions() as session:
        result = audit_log.verify(session, checkpoints=checkpoints)
        files = attachments.verify(session)
    engine.dispose()
    # a line for each check that failed; when all is intact, both
    click.echo("\n".join(str(check) for check in (result, files) if not check.ok) or f"{result}\n{files}")
    if not (result.ok and files.ok):
        sys.exit(1)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from exc


@audit.command("checkpoint")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file (default: standard output)")
def audit_checkpoint(output: Path | None) -> None:
    """Sign every chain's head now, as a JSON file for auditors to keep outside the database."""
    from engine import audit_signing

    url = _require_database()
    signer = audit_signing.configured_signer(url)
    if signer is None:
        raise click.ClickException(f"no audit key at {audit_signing.key_path(url)} (run deptflow init)")
    engine, sessions = _sessions()
    try:
        with sessions() as session:
            checkpoint = audit_signing.take_checkpoint(session, signer)
    except audit_signing.CheckpointError as exc:
        click.echo(f"no checkpoint: {exc}")
        sys.exit(1)
    finally:
        engine.dispose()
    if output is None:
        click.echo(checkpoint.to_json(), nl=False)
    else:
        output.write_text(checkpoint.to_json(), encoding="utf-8")
        click.echo(f"checkpoint of {len(checkpoint.heads)} chains written to {output}")
