"""bpmnlint in the modeler, in Chromium: bpmn-js-bpmnlint (bundled from web/lint/ at set-up) marks problems on
the canvas and lists them in the validation panel with their element ids; clicking an id selects the element, the
toggle hides the markers, and editing the diagram lints it again. The shipped processes have no lint errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from workflows.catalogue import PROCESSES

PROCESS = "engineering_drawing_application"
ORPHAN = "Lint_forgotten_step"
ORPHAN_TASK = f'<bpmn:task id="{ORPHAN}" name="Forgotten step" />\n  </bpmn:process>'
ORPHAN_SHAPE = (
    f'<bpmndi:BPMNShape id="{ORPHAN}_di" bpmnElement="{ORPHAN}">'
    '<dc:Bounds x="240" y="560" width="100" height="80" /></bpmndi:BPMNShape>\n    </bpmndi:BPMNPlane>'
)
SHIPPED = [spec.key for spec in PROCESSES]


@pytest.fixture(autouse=True)
def _lint_bundle_built() -> None:
    bundle = Path(__file__).resolve().parents[2] / "web/static/vendor/bpmn/deptflow-bpmnlint.min.js"
    if not bundle.is_file():
        pytest.fail(f"{bundle} is missing: run `make setup` (it bundles web/lint/bpmnlint.js)", pytrace=False)


@pytest.fixture
def draft_with_orphan(sqlite_url: str) -> int:
    """A draft of PROCESS with a task that no flow reaches (drawn, in the R&D lane's empty corner)."""
    from engine import definitions, modeling, users
    from engine.core import WorkflowEngine
    from engine.db import make_engine

    engine = make_engine(sqlite_url)
    try:
        with WorkflowEngine().session_factory(engine)() as session:
            xml = definitions.latest_definition(session, PROCESS).xml
            assert xml.count("</bpmn:process>") == 1 and xml.count("</bpmndi:BPMNPlane>") == 1
            xml = xml.replace("</bpmn:process>", ORPHAN_TASK).replace("</bpmndi:BPMNPlane>", ORPHAN_SHAPE)
            draft = modeling.save_draft(session, users.user_by_name(session, "owen"), xml, note="orphan task")
            session.commit()
            return draft.id
    finally:
        engine.dispose()


def open_editor(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#modeler")).to_have_attribute("data-ready", "true")
    expect(page.locator("#lint")).to_be_visible()
    expect(page.locator("#lint-summary")).not_to_have_text("Linting…")


def test_lint_issue_is_listed_marked_and_selects_its_element(page, live_server, login, draft_with_orphan):
    login(page, live_server, "owen")
    open_editor(page, f"{live_server}/modeler/{PROCESS}/edit?draft={draft_with_orphan}")

    issue = page.locator(f"#lint-problems li.problem-lint[data-element-id='{ORPHAN}'][data-rule='no-disconnected']")
    expect(issue).to_have_count(1)
    expect(issue).to_have_class("problem problem-lint problem-error")
    expect(issue).to_contain_text("Element is not connected")
    expect(issue.get_by_role("button")).to_have_text(ORPHAN)
    # A task with no flows is also an implicit start and end: three errors, all on the orphan.
    for rule in ("no-implicit-start", "no-implicit-end"):
        expect(page.locator(f"#lint-problems li.problem-error[data-element-id='{ORPHAN}'][data-rule='{rule}']")
               ).to_have_count(1)
    expect(page.locator("#lint-problems li")).to_have_count(3)
    expect(page.locator("#lint-summary")).to_have_text("3 errors, 0 warnings.")
    expect(page.locator("#lint")).to_have_attribute("data-errors", "3")

    # The overlay sits on the element; the summary button on the canvas counts it.
    overlay = page.locator(f".djs-overlays[data-container-id='{ORPHAN}'] .bjsl-overlay .bjsl-icon-error")
    expect(overlay).to_have_count(1)
    expect(page.locator("#canvas .bjsl-button")).to_contain_text("3 Errors, 0 Warnings")

    # Clicking the id selects the element: the properties panel names it.
    issue.get_by_role("button").click()
    expect(page.locator(f".djs-element.selected[data-element-id='{ORPHAN}']")).to_have_count(1)
    expect(page.locator("#properties .bio-properties-panel-header-label")).to_have_text("Forgotten step")

    # The toggle hides the markers; the list stays. Switching back brings them back.
    toggle = page.get_by_role("switch", name="Show lint markers on the diagram")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    expect(page.locator("#canvas .bjsl-overlay")).to_have_count(0)
    expect(issue).to_have_count(1)
    toggle.check()
    expect(overlay).to_have_count(1)
    # bpmn-js-bpmnlint's own button toggles too, and the switch follows it.
    page.locator("#canvas .bjsl-button").click()
    expect(toggle).not_to_be_checked()
    expect(page.locator("#canvas .bjsl-overlay")).to_have_count(0)
    toggle.check()

    # Editing lints again: deleting the orphan (still selected: its context pad is open) clears the issues.
    expect(page.locator(f".djs-element.selected[data-element-id='{ORPHAN}']")).to_have_count(1)
    page.locator(".djs-context-pad .entry[data-action='delete']").click()
    expect(page.locator(f".djs-element[data-element-id='{ORPHAN}']")).to_have_count(0)
    expect(page.locator("#lint-summary")).to_have_text("No lint issues.")
    expect(page.locator("#lint-problems li")).to_have_count(0)
    expect(page.locator("#canvas .bjsl-overlay")).to_have_count(0)


def test_shipped_processes_have_no_lint_errors(page, live_server, login):
    login(page, live_server, "owen")
    for key in SHIPPED:
        open_editor(page, f"{live_server}/modeler/{key}/edit")
        expect(page.locator("#lint"), key).to_have_attribute("data-errors", "0")
        expect(page.locator("#lint-problems li.problem-error"), key).to_have_count(0)
    # One of them is clean through and through.
    open_editor(page, f"{live_server}/modeler/{PROCESS}/edit")
    expect(page.locator("#lint-summary")).to_have_text("No lint issues.")
    expect(page.locator("#canvas .bjsl-overlay")).to_have_count(0)
    expect(page.locator("#canvas .bjsl-button")).to_contain_text("No Issues")
