"""API tokens: ``/api/v1/tokens`` and the *API tokens* page of one's account."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_smorest import Blueprint

from engine import api_tokens
from engine.errors import InvalidForm

from ..database import act_as, db
from ..params import int_arg
from ..security import actor as session_actor
from . import schemas
from .auth import act, actor, authenticate

api = Blueprint("api_tokens", __name__, url_prefix="/api/v1/tokens",
                description="My API tokens: make one (shown once), list, revoke")
api.before_request(authenticate)
pages = FlaskBlueprint("tokens", __name__)


def _token(token: Any, secret: str | None = None) -> dict[str, Any]:
    shown = {name: getattr(token, name) for name in ("id", "name", "prefix", "roles", "created_at", "expires_at",
                                                     "last_used_at", "revoked_at")}
    return {**shown, "token": secret} if secret else shown


@api.route("")
@api.response(200, schemas.Token(many=True))
def list_tokens():
    """My tokens that are neither expired nor revoked, newest first."""
    return [_token(t) for t in api_tokens.live_tokens(db(), actor())]


@api.route("", methods=["POST"])
@api.arguments(schemas.TokenRequest())
@api.response(201, schemas.NewToken)
def create_token(body: dict[str, Any]):
    """Make a token with a scope among my roles (a token's own scope bounds the tokens it makes)."""
    made = act(api_tokens.create_token, body["name"], body["roles"], body["days"])
    return _token(made.token, made.secret)


@api.route("/<int:token_id>", methods=["DELETE"])
@api.response(204)
def revoke(token_id: int):
    """Revoke one of my tokens; it stops working at once."""
    act(api_tokens.revoke_token, token_id)
    return ""


# --- the page -----------------------------------------------------------------------------


def _page(errors: dict[str, str] | None = None, values: dict[str, Any] | None = None, made: Any = None,
          status: int = 200):
    me = session_actor()
    return render_template("api/tokens.html", tokens=api_tokens.live_tokens(db(), me), errors=errors or {},
                           values=values or {}, made=made, max_days=api_tokens.MAX_DAYS), status


@pages.route("/account/tokens")
@login_required
def index():
    """My API tokens, and a form to make one."""
    return _page()


@pages.route("/account/tokens", methods=["POST"])
@login_required
def create():
    """Make a token; the page shows it this once."""
    roles = request.form.getlist("roles")
    try:
        made = act_as(session_actor(), api_tokens.create_token, request.form.get("name", ""), roles,
                      int_arg("days", api_tokens.DEFAULT_DAYS, minimum=1, maximum=api_tokens.MAX_DAYS))
    except InvalidForm as exc:
        return _page(exc.errors, {"name": request.form.get("name", ""), "roles": roles}, status=422)
    return _page(made=made, status=201)


@pages.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_page(token_id: int):
    """Revoke a token."""
    token = act_as(session_actor(), api_tokens.revoke_token, token_id)
    flash(f"The token “{token.name}” is revoked.", "success")
    return redirect(url_for("tokens.index"))
