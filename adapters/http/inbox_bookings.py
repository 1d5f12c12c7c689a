"""The inbox's Bookings view (`GET /inbox/bookings`): the appointments waiting for the owner
first, then today's and this week's, each with the customer's name (from the facts), the time in
the business's zone and language, and the owner's actions (confirm, propose another time,
decline, cancel, no-show), which go through the same bookings service as the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import HttpError, deps
from agentstream.adapters.http.inbox_data import bookings_ahead
from agentstream.adapters.http.openapi import operation
from agentstream.adapters.http.inbox_routes import _checked_post, _html_errors, _page, _signed_in
from agentstream.events import utc_now
from agentstream.projections import booking_texts as texts
from agentstream.projections.appointments import OPEN


@operation("The Bookings view: waiting first, then today and this week", security="inboxSession", tag="inbox",
           html=True, answers={200: "an HTML page", 303: "not signed in: to /inbox"})
async def bookings_page(request: Request, error: str | None = None, status: int = 200,
                        notice: str | None = None) -> Response:
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        return RedirectResponse("/inbox", status_code=303)
    business_id = session.business_id or ""
    info = await d.directory.info(business_id) or {}
    language, now = str(info.get("language") or "en"), utc_now()
    rules = await d.bookings.rules(business_id)
    today = now.astimezone(rules.zone).date()
    rows = await bookings_ahead(d, business_id)
    facts, _ = await d.owner.customers(business_id, sorted({r["userId"] for r in rows}), with_memory=False)
    names = {user: dict(kinds).get("name") or user for user, kinds in facts.items()}
    shown = [_row(r, names.get(r["userId"], r["userId"]), language) for r in rows]
    week_end = (today + timedelta(days=6 - today.weekday())).isoformat()
    sections = [("Waiting for you", [r for r in shown if r["status"] in OPEN]),
                ("Today", [r for r in shown if r["day"] == today.isoformat() and r["status"] not in OPEN]),
                ("This week", [r for r in shown if today.isoformat() < r["day"] <= week_end and r["status"] not in OPEN])]
    return _page("inbox_bookings.html", status, session=session, sections=sections, error=error,
                 notice=notice, pending=len(sections[0][1]))


def _row(row: dict[str, Any], name: str, language: str) -> dict[str, Any]:
    return {**row, "name": name, "when": texts.when_text(row["at"], language),
            "label": texts.STATUS_NAMES[texts.lang_of(language)][row["status"]]}


@operation("Confirm, decline, propose another time, cancel or mark a no-show", form=api.BookingActionForm,
           security="inboxSession", tag="inbox", html=True,
           answers={303: "done: to /inbox/bookings",
                    200: "done, but its message to the customer could not go: the page, saying why and what to add",
                    400: "the page again, saying what is wrong",
                    403: "missing or wrong CSRF token", 404: "unknown appointment", 409: "the page again: refused"})
async def bookings_act(request: Request) -> Response:
    d, session, form = await _checked_post(request)
    action, appointment_id = request.path_params["action"], request.path_params["appointmentId"]
    body = {"at": form.get("at", "")} if action == "propose" else {}
    try:
        done = await d.bookings.act(session.business_id or "", appointment_id, action, body)
    except HttpError as exc:
        if exc.status == 404:
            raise
        return await bookings_page(request, exc.message, exc.status)
    if done.get("notSent"):
        return await bookings_page(request, notice=not_sent_notice(done))
    return RedirectResponse("/inbox/bookings", status_code=303)


def not_sent_notice(done: dict[str, Any]) -> str:
    """What the owner reads when an action holds but its message could not go to the customer."""
    return f"Done (now {done['status']}), but the customer was not told: {done['notSent']}"


def inbox_bookings_routes() -> list[BaseRoute]:
    return [Route("/inbox/bookings", _html_errors(bookings_page), methods=["GET"]),
            Route("/inbox/bookings/{appointmentId}/{action}", _html_errors(bookings_act), methods=["POST"])]


__all__ = ["inbox_bookings_routes"]
