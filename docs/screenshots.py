"""Take docs/inbox.png: the marketing manager's inbox with a few cases in it.

Run from the repository root:  .venv/bin/python docs/screenshots.py

It builds a throw-away SQLite database (schema, the process catalogue, the demo users),
moves three cases of different processes to the marketing manager through the engine API,
serves the app on a free local port and photographs Mark's inbox with headless Chromium
(DEPTFLOW_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium). Nothing outside
docs/inbox.png is written; the database is deleted afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from engine import runtime, users  # noqa: E402
from engine.db import HumanTask, make_engine, make_session_factory  # noqa: E402
from web import create_app  # noqa: E402
from workflows import setup  # noqa: E402

OUTPUT = ROOT / "docs" / "inbox.png"
WHO = "mark"
VIEWPORT = {"width": 1280, "height": 800}
MAX_BYTES = 300 * 1024
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def build_database(url: str) -> None:
    setup.initialise(url, demo=True)


class Demo:
    """Plays the demo people through the engine, one committed step at a time."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def start(self, username: str, process_key: str, values: dict[str, Any]) -> int:
        with self.sessions() as session:
            instance = runtime.start_process(session, self._user(session, username), process_key, values)
            session.commit()
            return instance.id

    def open_task(self, instance_id: int) -> int:
        with self.sessions() as session:
            where = (HumanTask.instance_id == instance_id, HumanTask.status == "open")
            ids = list(session.scalars(select(HumanTask.id).where(*where)))
        assert len(ids) == 1, f"case {instance_id} has open tasks {ids}, expected one"
        return ids[0]

    def complete(self, username: str, instance_id: int, values: dict[str, Any]) -> None:
        task_id = self.open_task(instance_id)
        with self.sessions() as session:
            runtime.complete_task(session, self._user(session, username), task_id, values)
            session.commit()

    def claim(self, username: str, instance_id: int) -> None:
        task_id = self.open_task(instance_id)
        with self.sessions() as session:
            runtime.claim(session, self._user(session, username), task_id)
            session.commit()

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _user(session, username: str):
        user = users.user_by_name(session, username)
        assert user is not None, username
        return user


def fill_inbox(demo: Demo) -> None:
    """Three cases waiting for the marketing manager; he has already claimed the plan review."""
    today = date.today()
    plan = demo.start(
        "rita",
        "marketing_plan_approval",
        {
            "title": f"Marketing plan {today.year + 1}",
            "plan_year": str(today.year + 1),
            "marketing_strategy": "Grow the specialty-store channel; two regional campaigns; new sofa line.",
            "sales_target": "12000000",
            "total_budget": "900000",
            "ad_expense_q1": "200000",
            "ad_expense_q2": "250000",
            "ad_expense_q3": "200000",
            "ad_expense_q4": "250000",
        },
    )
    demo.claim(WHO, plan)

    drawings = demo.start(
        "steve",
        "engineering_drawing_application",
        {
            "title": "Drawings: Harbour Hotel lobby",
            "customer_name": "Harbour Hotel Group",
            "project_name": "Lobby refurbishment",
            "drawings_needed_by": (today + timedelta(days=21)).isoformat(),
            "product_lines": "Oslo sofas, Bergen lounge chairs",
            "quantity": "64",
        },
    )
    registration = {"registration_number": "EDA-0042", "registration_date": today.isoformat()}
    demo.complete("clara", drawings, registration)

    complaint = demo.start(
        "cathy",
        "customer_complaint",
        {
            "title": "Complaint: Wang, late sofa delivery",
            "customer_name": "Mrs Wang",
            "customer_contact": "wang@example.com",
            "product_name": "Sofa Oslo 3-seater",
            "problem_type": "delivery",
            "complaint_description": "Delivered three weeks late, after two missed appointments.",
        },
    )
    demo.complete("cathy", complaint, {"severity": "high", "confirmed_type": "delivery"})
    demo.complete(
        "sam",
        complaint,
        {"service_resolution": "Apologised; 10 % voucher.", "service_resolved_date": today.isoformat()},
    )
    demo.complete(
        "cathy",
        complaint,
        {
            "customer_resolved": "false",
            "satisfaction": "dissatisfied",
            "confirmation_comment": "Wants a refund of the delivery fee.",
        },
    )


def chromium_path() -> str:
    return os.environ.get("DEPTFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def photograph(base_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
            page = context.new_page()
            page.goto(f"{base_url}/login")
            page.get_by_label("Username").fill(WHO)
            page.get_by_label("Password").fill(setup.DEMO_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#assigned tr[data-task-id]")).to_have_count(1)
            expect(page.locator("#available tr[data-task-id]")).to_have_count(2)
            page.screenshot(path=str(OUTPUT))
        finally:
            browser.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="deptflow-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        build_database(url)
        demo = Demo(url)
        try:
            fill_inbox(demo)
        finally:
            demo.close()

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
