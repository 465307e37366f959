"""``/api/v1/messages``: correlate a BPMN message to the cases that wait for it (or start one with it).

Administrators and integrations whose roles grant ``external_worker`` send messages (see
:mod:`engine.messages`). One engine call.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from engine import messages

from . import schemas
from .auth import act, authenticate

bp = Blueprint("api_messages", __name__, url_prefix="/api/v1/messages",
               description="BPMN messages: wake the cases that wait for them, or start cases at message start events")
bp.before_request(authenticate)


@bp.route("", methods=["POST"])
@bp.arguments(schemas.MessageRequest())
@bp.response(200, schemas.Correlated(many=True))
def correlate(body: dict[str, Any]):
    """Deliver a message by name to the case waiting for it — with that business key or those variables — its
    variables merged into the case's data; when no case waits, start a case of the process whose message start
    event has that name (404: nobody waits and nothing starts; 409: several cases match and all is not set)."""
    return act(lambda session, actor: messages.correlate_message(
        session, actor, body["name"], business_key=body["business_key"], correlation=body["correlation"],
        payload=body["variables"], all=body["all"]))
