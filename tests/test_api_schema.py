"""Every operation of the OpenAPI document against the app (schemathesis): no 5xx, and every answer
(status, content type, headers, body) as the document says. Bounded examples: it runs in well under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks

from workflows.catalogue import DEMO_PASSWORD

CHECKS = [schemathesis.checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]


@pytest.fixture
def api_schema(app):
    """The app's document, with a bearer token of the administrator (the widest roles) for every call."""
    client = app.test_client()
    client.post("/login", data={"username": "admin", "password": DEMO_PASSWORD})
    token = client.post("/api/v1/tokens", json={"name": "schemathesis", "days": 1}).json["token"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return schema, {"Authorization": f"Bearer {token}"}


def test_every_operation_answers_as_documented(api_schema):
    schema, headers = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    failures, statuses = [], []
    for operation in operations:
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(statuses) >= 2 * len(operations) and any(s < 300 for s in statuses) and any(s >= 400 for s in statuses)
