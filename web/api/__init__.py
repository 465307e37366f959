"""The REST API, ``/api/v1``: JSON over the same engine actions as the pages, an OpenAPI 3.1 document
generated from the code by flask-smorest (``/api/v1/openapi.json``, browsable at ``/api/v1/docs``),
errors as ``application/problem+json``, bearer tokens or the login session.

Request schemas are handed to ``arguments`` as instances: given a class, webargs builds a schema (copying
its fields) on every request."""

from __future__ import annotations

import http

from flask import Blueprint, Flask, render_template
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from ..params import MAX_ID, BoundedIntConverter
from . import cases, external, health, messages, owners, schemas, tokens, work
from .problems import MEDIA_TYPE

VERSION = "v1"
PREFIX = f"/api/{VERSION}"


class DeptflowApi(Api):
    """flask-smorest's ``Api`` whose error responses are documented as problems and answered by
    :mod:`web.errors` (which hands API requests to :mod:`web.api.problems`)."""

    ERROR_SCHEMA = schemas.Problem

    def _register_error_handlers(self) -> None:
        """The app's own handlers answer: pages for the pages, problems for the API."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


docs = Blueprint("api_docs_page", __name__)


@docs.route(f"{PREFIX}/docs")
def browse():
    """The OpenAPI document in Swagger UI (from npm, served from ``static/vendor``)."""
    return render_template("api/docs.html")


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "deptflow")
    app.config.setdefault("API_VERSION", VERSION)
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Start cases, work on tasks, follow and audit cases; external task workers. "
                                "Authenticate with "
                                "`Authorization: Bearer <token>` (make tokens under *API tokens*) or the "
                                "browser's login session (then POSTs need the `X-CSRFToken` header)."},
        "security": [{"bearer": []}, {"session": []}],
    })
    api = DeptflowApi(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                   "description": "An API token (dft_…)"})
    api.spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "session"})
    api.register_converter(BoundedIntConverter, lambda _: {"type": "integer", "minimum": 0, "maximum": MAX_ID})
    for blueprint in (work.processes, work.tasks, cases.cases, cases.audit, owners.bp, external.bp, messages.bp,
                      tokens.api,
                      health.bp):
        api.register_blueprint(blueprint)
    app.register_blueprint(docs)
    app.register_blueprint(tokens.pages)
    app.extensions["deptflow_api"] = api
