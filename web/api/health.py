"""``/healthz`` (the process answers) and ``/readyz`` (and reaches its database), for load balancers."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..database import db
from . import schemas
from .problems import problem

bp = Blueprint("api_health", __name__, description="Health checks (no login)")


@bp.route("/healthz")
@bp.doc(security=[])
@bp.response(200, schemas.Health)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.route("/readyz")
@bp.doc(security=[])
@bp.response(200, schemas.Health)
@bp.alt_response(503, schema=schemas.Problem, content_type="application/problem+json",
                 description="The database cannot be reached")
def readyz():
    """The process is up and its database answers."""
    try:
        db().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return problem(503, "The database cannot be reached.")
    return {"status": "ready"}
