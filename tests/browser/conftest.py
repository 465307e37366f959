"""Browser tests: the real app on a free local port, driven by Debian's Chromium through Playwright.

Fixtures
  ``live_server``  the app on the test's fresh SQLite database (``sqlite_url``), CSRF enabled;
                   yields the base URL.
  ``browser``      one headless Chromium for the whole session (skipped, or failed when
                   ``DEPTFLOW_REQUIRE_BROWSER=1``, if Chromium is missing or will not start).
  ``new_page``     ``new_page()`` opens a page in a brand-new browser context (its own cookies: one
                   person); every context is closed after the test.
  ``page``         one such page.
  ``login``        the :func:`login` helper: ``login(page, base_url, "mark")``.
  ``start_case``   starts a case straight through the engine: ``start_case("cathy", key, values)``.

Every test in this folder is marked ``browser`` (``-m "not browser"`` leaves them out). A failing
test leaves a screenshot of each page it opened in its ``tmp_path``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import got_request_exception
from headless import CHROMIUM_ARGS, chromium_path
from support import unavailable
from werkzeug.serving import make_server

from workflows.catalogue import DEMO_PASSWORD

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None
else:
    # Auto-waiting assertions: generous enough for a loaded 2-core CI machine, never a fixed sleep.
    expect.set_options(timeout=10_000)

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1280, "height": 800}
OpenPage = Callable[[], "Page"]
_REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


# --- marking and failure reports --------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder (and below) as ``browser``."""
    for item in items:
        if item.path.parent == HERE or HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item so that fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORT_KEY, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORT_KEY, {})
    return any(r.failed for r in reports.values())


# --- the server -------------------------------------------------------------------------


@pytest.fixture
def live_server(sqlite_url: str) -> Iterator[str]:
    """Serve the app on 127.0.0.1 and a free port; yield its base URL.

    The socket is bound and listening before the thread starts, so the first request simply
    waits in the backlog: no polling, no sleep. An exception that escaped a view fails the test.
    """
    from web import create_app

    app = create_app(
        {
            "DATABASE_URL": sqlite_url,
            "SECRET_KEY": "browser-tests",
            "TESTING": True,
            "WTF_CSRF_ENABLED": True,
        }
    )
    crashes: list[BaseException] = []

    def record(sender: Any, exception: BaseException, **extra: Any) -> None:
        crashes.append(exception)

    got_request_exception.connect(record, app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="deptflow-live-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        got_request_exception.disconnect(record, app)
        app.extensions["deptflow_engine"].dispose()
    assert not crashes, f"the server raised: {crashes!r}"


@pytest.fixture
def in_database(sqlite_url: str) -> Iterator[Callable]:
    """``in_database(work)`` runs ``work(session)`` on the live server's database and commits."""
    from engine.core import WorkflowEngine
    from engine.db import make_engine

    engines = []

    def run(work: Callable):
        engine = make_engine(sqlite_url)
        engines.append(engine)
        with WorkflowEngine().session_factory(engine)() as session:
            result = work(session)
            session.commit()
            return result

    yield run
    for engine in engines:
        engine.dispose()


@pytest.fixture
def start_case(sqlite_url: str) -> Iterator[Callable[..., tuple[int, list[int]]]]:
    """``start_case(username, process_key, values)`` starts a case through the engine API, as that
    user, in the test's database; returns the case id and the ids of its open tasks."""
    from sqlalchemy import select

    from engine import actions, users
    from engine.core import WorkflowEngine
    from engine.db import HumanTask, make_engine

    engine = make_engine(sqlite_url)
    sessions = WorkflowEngine().session_factory(engine)

    def start(username: str, process_key: str, values: dict[str, Any]) -> tuple[int, list[int]]:
        with sessions() as session:
            user = users.user_by_name(session, username)
            assert user is not None, username
            instance = actions.start_process(session, user, process_key, values)
            session.commit()
            open_tasks = session.scalars(
                select(HumanTask.id).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
            )
            return instance.id, sorted(open_tasks)

    yield start
    engine.dispose()


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if sync_playwright is None:
        unavailable("BROWSER", "the playwright package is not installed (pip install -e '.[dev]')")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        unavailable("BROWSER", f"no Chromium at {path} (apt-get install chromium, or set DEPTFLOW_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            unavailable("BROWSER", f"Chromium at {path} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenPage]:
    """``new_page()``: a page in a fresh context, i.e. a separate person with their own cookies.

    Uncaught JavaScript errors and Content-Security-Policy violations on any page fail the test.
    """
    contexts = []
    pages: list[Page] = []
    problems: list[str] = []

    def watch_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"console: {message.text}")

    def open_page() -> Page:
        context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(10_000)
        context.set_default_navigation_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", watch_console)
        pages.append(page)
        return page

    yield open_page

    if _failed(request):
        for number, page in enumerate(pages, start=1):
            if page.is_closed():
                continue
            target = tmp_path / f"failure-page{number}.png"
            try:
                page.screenshot(path=str(target), full_page=True)
            except PlaywrightError:
                continue
            print(f"screenshot of page {number} ({page.url}): {target}")
    for context in contexts:
        context.close()
    assert not problems, "the pages reported: " + "; ".join(problems)


@pytest.fixture
def page(new_page: OpenPage) -> Page:
    return new_page()


def login(page: Page, base_url: str, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log ``username`` in through the login form and wait for their inbox."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.fixture(name="login")
def login_fixture() -> Callable[..., None]:
    return login
