"""Take docs/inbox.png and docs/inbox-phone.png: the marketing manager's inbox with a few cases in it, on a
desktop and on a phone (375 px, an iPhone SE).

Run from the repository root:  .venv/bin/python docs/screenshots.py

It builds a throw-away SQLite database (schema, the process catalogue, the demo users),
moves three cases of different processes to the marketing manager through the engine API,
serves the app on a free local port and photographs Mark's inbox with headless Chromium
(DEPTFLOW_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium). Nothing outside
the PNGs of docs/ are written; the database is deleted afterwards.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from headless import CHROMIUM_ARGS, chromium_path  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from web import create_app  # noqa: E402
from workflows import setup  # noqa: E402

OUTPUT = ROOT / "docs" / "inbox.png"
PHONE = ROOT / "docs" / "inbox-phone.png"
HISTORY = ROOT / "docs" / "history.png"
MODELER = ROOT / "docs" / "modeler.png"
DASHBOARD = ROOT / "docs" / "dashboard.png"
WHO = "mark"
VIEWPORT = {"width": 1280, "height": 800}
PHONE_VIEWPORT = {"width": 375, "height": 667}
MAX_BYTES = 300 * 1024


def build_database(url: str) -> None:
    """Schema, catalogue, demo users and the demo cases (finished ones and Mark's inbox)."""
    setup.initialise(url, demo=True, cases=True)


def _login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(setup.DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def photograph(base_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
            page = context.new_page()
            _login(page, base_url, WHO)
            expect(page.locator("#assigned tr[data-task-id]")).to_have_count(1)
            expect(page.locator("#available tr[data-task-id]")).to_have_count(2)
            page.screenshot(path=str(OUTPUT))
            page.set_viewport_size(PHONE_VIEWPORT)
            expect(page.locator("#nav-links")).to_be_hidden()  # folded behind "Menu"
            page.screenshot(path=str(PHONE), full_page=True)

            auditor = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC").new_page()
            _login(auditor, base_url, "alice")
            auditor.goto(f"{base_url}/history/1")  # the finished dealer audit with its rectification loop
            expect(auditor.locator("#diagram")).to_have_attribute("data-rendered", "true")
            auditor.screenshot(path=str(HISTORY))

            photograph_modeler(browser, base_url)
            photograph_dashboard(browser, base_url)
        finally:
            browser.close()


def photograph_modeler(browser, base_url: str) -> None:
    """docs/modeler.png: Owen in the modeler, a task selected in the properties panel, and the validation
    report pointing at a candidate group that is not a role."""
    context = browser.new_context(viewport={"width": 1280, "height": 1120}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    _login(page, base_url, "owen")
    page.goto(f"{base_url}/modeler/customer_complaint/edit")
    expect(page.locator("#modeler")).to_have_attribute("data-ready", "true")
    page.locator(".djs-element.djs-shape[data-element-id='classify_complaint']").click()
    panel = page.locator("#properties")
    panel.locator("[data-group-id='group-CamundaPlatform__UserAssignment'] .bio-properties-panel-group-header").click()
    groups = panel.locator("#bio-properties-panel-candidateGroups")
    groups.fill("customer_service, complaints_desk")
    expect(page.locator("#status")).to_have_text("Unsaved changes.")
    page.get_by_label("Note for this draft or version (optional)").fill("Complaints desk shares the classification")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#problems li.problem-error")).to_have_count(1)
    page.screenshot(path=str(MODELER))
    context.close()


def photograph_dashboard(browser, base_url: str) -> None:
    """docs/dashboard.png: the marketing manager's dashboard on the demo history, the dealer audit's bottlenecks."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    _login(page, base_url, "mark")
    page.goto(f"{base_url}/dashboard?process=dealer_audit")
    expect(page.locator('canvas[data-chart="cycle"]')).to_have_attribute("data-rendered", "true")
    expect(page.locator("#bottleneck-diagram")).to_have_attribute("data-rendered", "true")
    page.screenshot(path=str(DASHBOARD), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 2350})
    context.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="deptflow-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        build_database(url)

        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "screenshots"})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            photograph(f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
            app.extensions["deptflow_engine"].dispose()

    size = OUTPUT.stat().st_size
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({size // 1024} KB)")
    if size > MAX_BYTES:
        print(f"warning: larger than {MAX_BYTES // 1024} KB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
