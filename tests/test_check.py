"""``deptflow check``: a verdict per file with element ids, never a traceback; over the shared corpus too."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from web.cli import main

DATA = Path(__file__).parent / "data"
VERDICT = re.compile(r"^(?P<file>\S.*): (?P<verdict>deploys|cannot deploy|not BPMN)$", re.M)


@pytest.fixture
def check(tmp_path, monkeypatch):
    """Run ``deptflow check`` without a database: the demo organisation's roles."""
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite3'}")

    def run(*files: Path):
        return CliRunner().invoke(main, ["check", *map(str, files)])

    return run


def test_a_file_that_deploys_exits_0_and_names_its_processes(check):
    result = check(DATA / "two_pools.bpmn")
    assert result.exit_code == 0, result.output
    assert "two_pools.bpmn: deploys" in result.output
    assert "runs as is: sales-intake (Sales intake), marketing.review (Marketing review)" in result.output
    assert "note: [customer]" in result.output and "1 of 1 file can be deployed" in result.output


def test_mapping_and_blocking_problems_name_their_elements_and_exit_1(check, tmp_path):
    xml = (DATA / "order-intake.bpmn").read_text()
    broken = tmp_path / "broken.bpmn"
    broken.write_text(xml.replace('<bpmn:task id="file-order" name="File the order">',
                                  '<bpmn:serviceTask id="file-order" camunda:class="com.acme.File">')
                      .replace("</bpmn:task>", "</bpmn:serviceTask>")
                      .replace("<bpmn:flowNodeRef>sign.paper-copy</bpmn:flowNodeRef>", ""))
    result = check(broken)
    assert result.exit_code == 1, result.output
    assert "needs mapping: [file-order] serviceTask calls Java" in result.output
    assert "blocks: [sign.paper-copy] manual task has no role" in result.output


def test_not_bpmn_exits_2(check, tmp_path):
    (tmp_path / "notes.txt").write_text("not xml at all")
    (tmp_path / "other.xml").write_text("<html/>")
    result = check(tmp_path / "notes.txt", tmp_path / "other.xml", DATA / "two_pools.bpmn")
    assert result.exit_code == 2, result.output
    assert result.output.count(": not BPMN") == 2 and "Traceback" not in result.output


def test_every_file_of_the_corpus_gets_a_verdict(check, corpus):
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.name.endswith((".bpmn", ".bpmn20.xml", ".dmn")))
    assert len(files) >= 30
    result = check(*files)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    verdicts = {m["file"]: m["verdict"] for m in VERDICT.finditer(result.output)}
    assert set(verdicts) == {str(f) for f in files}
    assert set(verdicts.values()) <= {"deploys", "cannot deploy"}
    deploys = sum(v == "deploys" for v in verdicts.values())
    print(f"\ncorpus: {deploys} of {len(files)} files deploy")
    assert deploys >= 1 and f"{deploys} of {len(files)} files can be deployed" in result.output
    # the DMN files deploy, and the invoice's business rule task finds its decision among them
    dmn = [f for f in files if f.suffix == ".dmn"]
    assert dmn and all(verdicts[str(f)] == "deploys" for f in dmn), result.output
    assert "business rule task calls decision" not in result.output


def test_the_modeler_import_shows_the_same_sorting(login_as):
    xml = (DATA / "order-intake.bpmn").read_text().replace(
        '<bpmn:task id="file-order" name="File the order">',
        '<bpmn:serviceTask id="file-order" camunda:class="com.acme.File">').replace("</bpmn:task>",
                                                                                  "</bpmn:serviceTask>")
    response = login_as("owen").post("/modeler/import", data={"file": (io.BytesIO(xml.encode()), "order.bpmn")},
                                     content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'<span class="severity">needs mapping</span>\s*<code class="element-id">file-order</code>',
                     page), page[-3000:]
