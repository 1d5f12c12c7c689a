"""An owner's action whose message cannot reach the customer (WhatsApp, the customer last wrote
three days ago, no approved template for it): the action holds, the API's 202 answer says why in
`notSent` (as its OpenAPI document says), and the inbox's Bookings page shows it after the action.
On the gateway served in the test's loop over the real local DynamoDB server."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from agentstream.events import new_event, stream_id, utc_now
from agentstream.streams.appointment_requests import appointment_id
from tests.integration.test_bookings_routes import SALON, Salon, fresh, salon, weekday_ahead  # noqa: F401 (fixture)
from tests.integration.world import drain

WHY = "no approved template for 'appointmentDeclined' on whatsapp in 'ro': add one under settings.templates.appointmentDeclined.whatsapp.ro"


async def asked_three_days_ago(salon: Salon, user: str) -> str:
    """A WhatsApp customer asked for an appointment three days ago: its id."""
    day = weekday_ahead(7)
    event = new_event("MessageReceived", business_id=SALON, user_id=user, channel="whatsapp",
                      occurred_at=utc_now() - timedelta(days=3),
                      payload={"content": f"Bună! Puteți să mă programați pe {day:%d.%m.%Y} la 10 pentru tuns?",
                               "replyTo": {"phone_number_id": "PN1", "to": user}})
    appended = await salon.world.store.append(event)
    await drain(salon.world, event.streamId)
    assert any(e.type == "AppointmentRequested" for e in await salon.log(user))
    return appointment_id(appended.event.eventId)


async def test_the_api_answer_and_its_document_carry_not_sent(salon: Salon) -> None:
    user = fresh("wa")
    answer = await salon.act(await asked_three_days_ago(salon, user), "decline")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "declined" and body["notSent"].endswith(WHY)
    assert body["notSent"].startswith("outside WhatsApp's 24-hour customer-service window")
    (declined,) = [e for e in await salon.log(user) if e.type == "AppointmentDeclined"]
    assert declined.payload.send.window == "closed" and declined.payload.send.template is None  # recorded: not sent

    document = (await salon.gw.http.get("/openapi.json")).json()
    post = document["paths"]["/v1/businesses/{businessId}/appointments/{appointmentId}/{action}"]["post"]
    ref = post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"eventId", "seq", "duplicate", "appointmentId", "status", "notSent"} <= set(model["properties"])


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


async def test_the_inbox_bookings_page_shows_why_the_customer_was_not_told(salon: Salon) -> None:
    user = fresh("wa")
    waiting = await asked_three_days_ago(salon, user)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{salon.gw.port}", timeout=60) as owner:
        signed = await owner.post("/inbox/sign-in", data={"csrf": _csrf(await owner.get("/inbox")),
                                                          "apiKey": salon.gw.keys[SALON], "name": "Ana"})
        assert signed.status_code == 303, signed.text
        page = await owner.get("/inbox/bookings")
        assert f'data-id="{waiting}"' in page.text
        done = await owner.post(f"/inbox/bookings/{waiting}/decline", data={"csrf": _csrf(page)})
        assert done.status_code == 200, done.text
        notice = re.search(r'<p class="notice" role="status" id="not-sent">([^<]+)</p>', done.text)
        assert notice is not None, done.text
        text = notice.group(1).replace("&#39;", "'")
        assert text.startswith("Done (now declined), but the customer was not told: outside WhatsApp") and text.endswith(WHY)
        await drain(salon.world, stream_id(SALON, user))  # the worker folds the decline
        again = await owner.get("/inbox/bookings")
        assert f'data-id="{waiting}"' not in again.text and 'id="not-sent"' not in again.text  # said once, after the action
