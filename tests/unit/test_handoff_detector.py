"""The customer's request for a person: a table of RO/EN messages, with negatives."""

import pytest

from agentstream.projections.handoff import normalize, notice, wants_human

ASKS = [
    "vreau să vorbesc cu cineva",
    "Vreau sa vorbesc cu cineva",
    "VREAU SĂ VORBESC CU UN OM!",
    "un om vă rog",
    "Un om, va rog",
    "vă rog, un om",
    "aș vrea să vorbesc cu o persoană reală",
    "as dori sa discut cu un operator",
    "pot vorbi cu un coleg?",
    "Se poate să vorbesc cu un angajat?",
    "dați-mi un operator uman",
    "am nevoie de un om adevărat",
    "transferați-mă la un coleg",
    "nu vreau să vorbesc cu un robot",
    "Bună ziua, vreau să vorbesc cu cineva despre factură",
    "a human please",
    "A human, please!",
    "human please",
    "I want to talk to a person",
    "can I speak with a real person?",
    "I need a human",
    "Let me talk to someone",
    "connect me to an agent",
    "I'd like to speak to a representative",
    "get me a live agent",
    "is there a real human there",
    "I want a human agent",
    "please, a human",
    "I'd like to chat with customer service",
    "vreau să vorbesc cu cineva ş̧i repede",
]
NOT_ASKS = [
    "",
    "Bună ziua, aveți loc mâine la 10?",
    "vreau o programare la tuns",
    "am vorbit ieri cu cineva de la voi",
    "nu vreau să vorbesc cu cineva, doar întreb programul",
    "Mulțumesc, omule!",
    "cât costă un tuns pentru un om mare?",
    "Roman Popescu aici",
    "What time do you open?",
    "thanks, no need for a human",
    "I don't want to talk to a person, just tell me the price",
    "human resources asked me to call",
    "the humane society",
    "someone told me you open at 9",
    "my husband wants to book for two persons",
    "please book me for Thursday",
    "is this robot able to book?",
]


@pytest.mark.parametrize("text", ASKS)
def test_a_request_for_a_person_is_detected(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize("text", NOT_ASKS)
def test_other_messages_are_not_requests(text: str) -> None:
    assert not wants_human(text)


def test_normalize_drops_diacritics_both_comma_and_cedilla() -> None:
    assert normalize("Şi ș ţ ț Ă â Î") == "si s t t a a i"


def test_the_notice_is_in_the_customers_language_english_otherwise() -> None:
    assert "coleg" in notice("ro", "owner")
    assert "team" in notice("en", "owner")
    assert notice("fr", "customer") == notice("en", "customer")
