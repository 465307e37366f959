"""A bid suggestion in Chromium (issue 20): the representative reports a tender with its documents attached in
the start form; research & planning sees the file on the task page and downloads it, suggests, and the
marketing manager decides to bid; the representative records the outcome."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_inbox_flow import field, flash, task_rows

TITLE = "Bid: Lindau library reading rooms"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(autouse=True)
def files_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "attachments"
    monkeypatch.setenv("DEPTFLOW_ATTACHMENTS_DIR", str(directory))
    return directory


def claim_and_open(page: Page, task_name: str) -> None:
    row = task_rows(page, "available", TITLE)
    expect(row).to_have_count(1)
    expect(row.get_by_role("link")).to_have_text(task_name)
    row.get_by_role("button", name="Claim").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(task_name)


def test_bid_with_tender_documents(new_page, live_server, login, files_dir):
    steve = new_page()
    login(steve, live_server, "steve")
    steve.goto(f"{live_server}/processes/bid_suggestion/start")
    expect(steve.get_by_role("heading", level=1)).to_have_text("Start: Bid suggestion")
    field(steve, "Case title").fill(TITLE)
    field(steve, "Customer").fill("City of Lindau")
    field(steve, "Project").fill("Public library reading rooms")
    field(steve, "Kind").select_option(label="Tender (bid)")
    field(steve, "Bid deadline").fill("2027-01-20")
    field(steve, "Estimated value").fill("380000")
    field(steve, "Product lines").fill("Bergen reading chairs, Oslo tables")
    field(steve, "Tender documents").set_input_files(
        {"name": "tender.pdf", "mimeType": "application/pdf", "buffer": PDF})
    steve.get_by_role("button", name="Start").click()
    expect(steve).to_have_url(re.compile(rf"^{re.escape(live_server)}/instances/\d+$"))
    expect(flash(steve)).to_have_text(f"Started “{TITLE}”.")
    expect(steve.locator("#attachments")).to_contain_text("tender.pdf")
    assert len([p for p in files_dir.rglob("*") if p.is_file()]) == 1, "the file is stored once"

    rita = new_page()
    login(rita, live_server, "rita")
    claim_and_open(rita, "Prepare bid suggestions")
    link = rita.locator("#attachments a", has_text="tender.pdf")
    expect(link).to_have_count(1)
    with rita.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == PDF
    field(rita, "Suggested price").fill("352000")
    field(rita, "Products to offer").fill("120 Bergen chairs, 30 Oslo tables")
    field(rita, "Competitors and their likely offers").fill("Nordform bids low on price")
    field(rita, "Chance of winning (%)").fill("60")
    rita.get_by_role("button", name="Complete").click()
    expect(flash(rita)).to_have_text(f"Completed “Prepare bid suggestions” of “{TITLE}”.")

    mark = new_page()
    login(mark, live_server, "mark")
    claim_and_open(mark, "Decide whether to bid")
    expect(mark.locator("#attachments")).to_contain_text("tender.pdf")
    field(mark, "Decision").select_option(label="Bid")
    field(mark, "Approved bid price").fill("345000")
    mark.get_by_role("button", name="Complete").click()
    expect(flash(mark)).to_have_text(f"Completed “Decide whether to bid” of “{TITLE}”.")

    steve.goto(f"{live_server}/")
    row = steve.locator("tr[data-task-id]").filter(has_text=TITLE)
    expect(row.get_by_role("link")).to_have_text("Record the bid's outcome")
    row.get_by_role("link").click()
    field(steve, "Outcome").select_option(label="Won")
    field(steve, "Contract value").fill("345000")
    steve.get_by_role("button", name="Complete").click()
    expect(flash(steve)).to_have_text(f"Completed “Record the bid's outcome” of “{TITLE}”.")
    steve.get_by_role("link", name="My requests").click()
    expect(steve.locator("tr[data-instance-id]").filter(has_text=TITLE)).to_contain_text("completed")
