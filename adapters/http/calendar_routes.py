"""`GET /calendar/{businessId}/{feedToken}.ics`: the business's bookings as an iCalendar (RFC
5545) feed a calendar app subscribes to: the confirmed appointments (and, with `?pending=1`, those
waiting for an answer) from 30 days back to 180 days ahead, each with a stable UID, its time in
the business's zone, the customer's name and phone, and the service.

Calendar clients send no headers, so the URL is the credential: the token is a secret of the
business (`agentstream credentials rotate <businessId> calendar`). An unknown business, a
business without a token and a wrong token all get the same 404.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event as VEvent
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http.common import deps
from agentstream.projections.appointments import status_at
from agentstream.projections.facts import business_zone

PAST_DAYS, AHEAD_DAYS = 30, 180
NOT_FOUND = "not found"
ICS_STATUS = {"confirmed": "CONFIRMED", "done": "CONFIRMED", "requested": "TENTATIVE", "proposed": "TENTATIVE"}


def feed(business: dict[str, Any], rows: list[dict[str, Any]], people: dict[str, dict[str, str]],
         now: datetime, pending: bool = False) -> bytes:
    """The iCalendar text of `rows` (bookings rows); `people`: userId → {"name", "phone"}."""
    zone_name = str(business.get("timezone") or "UTC")
    zone = business_zone(zone_name)
    cal = Calendar()
    cal.add("prodid", "-//agentstream//bookings//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{business.get('name') or business.get('businessId')}: bookings")
    cal.add("x-wr-timezone", zone_name)
    wanted = ("confirmed", "done", "requested", "proposed") if pending else ("confirmed", "done")
    for row in rows:
        status = status_at(row, now)
        if status not in wanted or len(row.get("at") or "") <= 10:
            continue
        cal.add_component(_event(row, status, people.get(row["userId"], {}), zone, business))
    if isinstance(zone, ZoneInfo):
        cal.add_missing_timezones()
    return cal.to_ical()


def _event(row: dict[str, Any], status: str, person: dict[str, str], zone: Any, business: dict[str, Any]) -> VEvent:
    start = datetime.fromisoformat(row["at"]).astimezone(zone)
    who = person.get("name") or row["userId"]
    event = VEvent()
    event.add("uid", f"{row['appointmentId']}@{business.get('businessId', 'agentstream')}.agentstream")
    event.add("dtstamp", datetime.fromisoformat(row["updatedAt"].replace("Z", "+00:00")))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=int(row.get("minutes") or 30)))
    event.add("summary", f"{row.get('service') or 'Appointment'}: {who}")
    lines = [f"Customer: {who}", f"Phone: {person['phone']}" if person.get("phone") else "",
             f"Service: {row['service']}" if row.get("service") else "", f"Status: {status}"]
    event.add("description", "\n".join(line for line in lines if line))
    event.add("status", ICS_STATUS.get(status, "TENTATIVE"))
    return event


async def calendar_feed(request: Request) -> Response:
    d = deps(request)
    business_id, token = request.path_params["businessId"], request.path_params["feedToken"]
    stored = (await d.credentials.get(business_id, "calendar")).get("feedToken", "")
    business = await d.directory.info(business_id) if stored else None
    if not stored or business is None or not hmac.compare_digest(stored.encode(), token.encode()):
        return PlainTextResponse(NOT_FOUND, status_code=404)
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    rows = await d.bookings.table.between(business_id, (now - timedelta(days=PAST_DAYS)).strftime(fmt),
                                          (now + timedelta(days=AHEAD_DAYS)).strftime(fmt))
    facts, _ = await d.owner.customers(business_id, sorted({r["userId"] for r in rows}), with_memory=False)
    people = {user: {k: v for k, v in kinds if k in ("name", "phone")} for user, kinds in facts.items()}
    body = feed(business, rows, people, now, pending=request.query_params.get("pending") in ("1", "true"))
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300"})


def calendar_routes() -> list[BaseRoute]:
    return [Route("/calendar/{businessId}/{feedToken}.ics", calendar_feed, methods=["GET"])]
