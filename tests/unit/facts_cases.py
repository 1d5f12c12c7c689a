"""Real-looking customer messages and the facts one message states (test table for test_facts).

Each case is one message folded into an empty state on the widget (no channel identity). The
default event time is Tuesday 2026-11-24 08:00 UTC: 10:00 in Bucharest, 08:00 in London.
`facts` maps kind → value (a list for several orders); `{}` means nothing may be extracted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

TUESDAY = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
BUCHAREST, LONDON = "Europe/Bucharest", "Europe/London"


@dataclass(frozen=True)
class Case:
    text: str
    facts: dict[str, Any]
    tz: str = BUCHAREST
    at: datetime = TUESDAY
    source: str = "stated"
    tags: tuple[str, ...] = field(default=())


def appointment(at: str, service: str | None = None) -> dict[str, Any]:
    return {"at": at, "service": service}


CASES: list[Case] = [
    # ---- names ------------------------------------------------------------------------------
    Case("Bună ziua, mă numesc Ana", {"name": "Ana"}),
    Case("Ma numesc Ana Popescu si as vrea o programare", {"name": "Ana Popescu"}),
    Case("Numele meu este Ion Ionescu.", {"name": "Ion Ionescu"}),
    Case("numele meu e maria", {"name": "Maria"}),
    Case("Sunt Ana, clienta dumneavoastră de anul trecut", {"name": "Ana"}),
    Case("Bună, sunt Ștefan Bălan", {"name": "Ștefan Bălan"}),
    Case("Mă cheamă Ioana", {"name": "Ioana"}),
    Case("Sunt bine, mulțumesc de întrebare", {}),
    Case("Sunt interesată de vopsit", {}),
    Case("sunt din nou eu", {}),
    Case("Nu sunt sigur dacă pot veni", {}),
    Case("My name is John Smith", {"name": "John Smith"}),
    Case("Hi, I'm Sarah.", {"name": "Sarah"}),
    Case("Hello, this is Mark from the office downstairs", {"name": "Mark"}),
    Case("I'm fine, thanks!", {}),
    Case("I'm looking for a vegan menu", {}),
    Case("I'm good, just wondering about parking", {}),
    Case("I am here already, at the door", {}),
    Case("I'm Romanian and I live in London", {"address": "London"}, tz=LONDON),
    # ---- phones -----------------------------------------------------------------------------
    Case("Telefonul meu e 0722 123 456", {"phone": "+40722123456"}),
    Case("Mă puteți suna la 0722-123-456", {"phone": "+40722123456"}),
    Case("nr meu: 0722123456", {"phone": "+40722123456"}),
    Case("+40 722 123 456", {"phone": "+40722123456"}),
    Case("0040 722 123 456 e numărul meu", {"phone": "+40722123456"}),
    Case("Sunați-mă la 0264 123 456 (fix)", {"phone": "+40264123456"}),
    Case("My number is +44 20 7946 0958", {"phone": "+442079460958"}, tz=LONDON),
    Case("Call me on 07911 123456", {"phone": "+447911123456"}, tz=LONDON),
    Case("Costă 250 lei sau 300?", {}),
    Case("Tunsul a fost 90 lei, plătit pe 12.11.2026", {}),
    Case("Putem la 10:30 sau 11:45?", {}),
    Case("Am plătit 1500000 lei pentru apartament", {}),
    Case("comanda nr. 0722123456 nu a ajuns", {"order": [{"ref": "0722123456"}]}),
    Case("Comanda 12345, telefon 0733 111 222", {"order": [{"ref": "12345"}], "phone": "+40733111222"}),
    # ---- e-mail -----------------------------------------------------------------------------
    Case("Emailul meu este Ana.Pop@Example.ro", {"email": "ana.pop@example.ro"}),
    Case("You can reach me at john_smith+salon@mail.co.uk", {"email": "john_smith+salon@mail.co.uk"}, tz=LONDON),
    Case("Trimiteți factura la contabilitate@firma-mea.ro vă rog", {"email": "contabilitate@firma-mea.ro"}),
    # ---- addresses and towns ----------------------------------------------------------------
    Case("Stau în Cluj", {"address": "Cluj"}),
    Case("locuiesc în Cluj-Napoca de 5 ani", {"address": "Cluj-Napoca"}),
    Case("sunt din Brașov", {"address": "Brașov"}),
    Case("I live in Leeds", {"address": "Leeds"}, tz=LONDON),
    Case("We live in New York", {"address": "New York"}, tz=LONDON),
    Case("I live in a flat near the station", {}, tz=LONDON),
    Case("stau în apropiere de salon", {}),
    Case("Adresa mea e Str. Florilor 5, București. Mulțumesc!", {"address": "Str. Florilor 5, București"}),
    Case("My address is 12 Baker Street, London and I'd like a delivery", {"address": "12 Baker Street, London"}, tz=LONDON),
    Case("adresa de livrare este Bd. Eroilor nr. 3, bl. A2, ap. 4", {"address": "Bd. Eroilor nr. 3, bl. A2, ap. 4"}),
    Case("Care e adresa salonului?", {}),
    # ---- language ---------------------------------------------------------------------------
    Case("Vorbiți engleză?", {"language": "en"}),
    Case("Can we speak Romanian?", {"language": "ro"}),
    Case("Prefer română, vă rog", {"language": "ro"}),
    Case("In English please", {"language": "en"}),
    Case("Do you speak English?", {"language": "en"}, tz=LONDON),
    Case("I don't speak Romanian", {}),
    Case("Aveți meniu în engleză?", {}),
    # ---- orders and bookings ----------------------------------------------------------------
    Case("Am comanda nr. 12345 și nu a ajuns", {"order": [{"ref": "12345"}]}),
    Case("order #A-5521 hasn't arrived", {"order": [{"ref": "A-5521"}]}, tz=LONDON),
    Case("My booking reference is XYZ123", {"order": [{"ref": "XYZ123"}]}, tz=LONDON),
    Case("I want to order 2 pizzas", {}, tz=LONDON),
    Case("Rezervarea mea 4521 e confirmată?", {"order": [{"ref": "4521"}]}),
    Case("Am comanda nr 7788 și vreau să vorbesc în engleză, vă rog", {"order": [{"ref": "7788"}], "language": "en"}),
    # ---- appointments (Tuesday 10:00 in Bucharest, 08:00 in London) -------------------------
    Case("Puteți să mă programați joi la 10 pentru tuns?", {"appointment": appointment("2026-11-26T10:00:00+02:00", "tuns")}),
    Case("Aș vrea o programare mâine după-amiază", {"appointment": appointment("2026-11-25T15:00:00+02:00")}),
    Case("Pot să fac o programare pe 12 decembrie la 14:30 pentru manichiură?",
         {"appointment": appointment("2026-12-12T14:30:00+02:00", "manichiură")}),
    Case("Vreau o programare azi la 18", {"appointment": appointment("2026-11-24T18:00:00+02:00")}),
    Case("Aveți loc luni? Aș vrea o programare la coafat", {"appointment": appointment("2026-11-30", "coafat")}),
    Case("Programare la ora 10 și jumătate, vă rog", {"appointment": appointment("2026-11-24T10:30:00+02:00")}),
    Case("Vreau să rezerv o masă pentru 4 persoane diseară la 8",
         {"appointment": appointment("2026-11-24T20:00:00+02:00", "masă pentru 4")}),
    Case("Bună seara, aș vrea o programare mâine la 9", {"appointment": appointment("2026-11-25T09:00:00+02:00")}),
    Case("O programare la vopsit sâmbătă dimineață?", {"appointment": appointment("2026-11-28T10:00:00+02:00", "vopsit")}),
    Case("Programați-mă pe 1.12 la 17:00", {"appointment": appointment("2026-12-01T17:00:00+02:00")}),
    Case("Vreau să fac o programare la 3", {"appointment": appointment("2026-11-24T15:00:00+02:00")}),
    Case("Programare pentru fiica mea joi", {"appointment": appointment("2026-11-26")}),
    Case("Vreau o programare azi la 9", {}, tags=("already past",)),
    Case("Aș vrea să programez un tuns marți la 11", {"appointment": appointment("2026-12-01T11:00:00+02:00", "tuns")},
         tags=("the same weekday is next week",)),
    Case("Can I book a haircut for tomorrow at 5pm?", {"appointment": appointment("2026-11-25T17:00:00+00:00", "haircut")},
         tz=LONDON),
    Case("I'd like to book a table for 2 next Monday at 7:30pm",
         {"appointment": appointment("2026-11-30T19:30:00+00:00", "table for 2")}, tz=LONDON),
    Case("Do you have an appointment on Friday afternoon for a manicure?",
         {"appointment": appointment("2026-11-27T15:00:00+00:00", "manicure")}, tz=LONDON),
    Case("Table for four tonight please", {"appointment": appointment("2026-11-24T18:00:00+00:00", "table for 4")}, tz=LONDON),
    Case("Could I get an appointment on December 3rd at half past 9?",
         {"appointment": appointment("2026-12-03T09:30:00+00:00")}, tz=LONDON),
    Case("Programare mâine la 10", {"appointment": appointment("2026-03-29T10:00:00+03:00")},
         at=datetime(2026, 3, 28, 10, 0, tzinfo=timezone.utc), tags=("the clocks go forward that night",)),
    Case("La ce oră închideți azi?", {}),
    Case("Sunteți deschiși mâine la 10?", {}),
    Case("Vreau o programare", {}),
    Case("Mâine la 10 se poate?", {}, tags=("no booking word in this message",)),
    Case("What time do you close tonight?", {}, tz=LONDON),
    # ---- several facts, corrections ---------------------------------------------------------
    Case("Si maine? Ma numesc Ana, telefonul meu e 0722 123 456", {"name": "Ana", "phone": "+40722123456"}),
    Case("Bună, sunt Ana Popescu, telefon 0722 123 456, aș vrea o programare joi la 11 pentru tuns",
         {"name": "Ana Popescu", "phone": "+40722123456", "appointment": appointment("2026-11-26T11:00:00+02:00", "tuns")}),
    Case("I'm John, can I book a table for 4 tomorrow at 7pm?",
         {"name": "John", "appointment": appointment("2026-11-25T19:00:00+00:00", "table for 4")}, tz=LONDON),
    Case("Nu, numărul corect e 0733 222 111", {"phone": "+40733222111"}, source="corrected"),
    Case("Actually my email is John.Smith@Example.com", {"email": "john.smith@example.com"}, tz=LONDON, source="corrected"),
    Case("De fapt stau în Iași", {"address": "Iași"}, source="corrected"),
    Case("Mulțumesc, la revedere!", {}),
    Case("Hello! Great, thanks a lot, see you soon", {}, tz=LONDON),
]
