"""Topics and language of Romanian and English messages."""

from __future__ import annotations

from hypothesis import given, strategies as st

from agentstream.projections.topics import CANONICAL, STOP_WORDS, detect_language, extract_topics, topic_words, words

ASCII = str.maketrans("ăâîșşțţĂÂÎȘŞȚŢ", "aaissttAAISSTT")


def test_romanian_topics_fold_diacritics_and_drop_greetings_and_stop_words() -> None:
    assert extract_topics("Bună ziua, aș vrea o programare pentru vopsit și tuns mâine") == ["programare", "vopsit", "tuns"]
    assert extract_topics("Salut! Mulțumesc, vă rog frumos: VOPSIT ȘUVIȚE") == ["frumos", "vopsit", "suvite"]
    assert extract_topics("Aveţi loc la manichiură? (cu sedilă: ţ ş)") == ["loc", "manichiura", "sedila"]


def test_english_topics_drop_greetings_contractions_and_time_words() -> None:
    assert extract_topics("Hello! Do you have a vegan menu and a table for four tonight?") == ["vegan", "menu", "table", "four"]
    assert extract_topics("Thanks, I don't know if you're open; can't find parking") == ["open", "find", "parking"]


def test_order_of_first_appearance_dedup_limit_and_noise() -> None:
    assert extract_topics("PROGRAMARE programare Programare tuns programare") == ["programare", "tuns"]
    assert extract_topics("12345 !!! :) ok 10:30 12.05.2026 ab") == []
    assert extract_topics("alpha beta gamma delta epsilon zeta", limit=3) == ["alpha", "beta", "gamma"]
    assert extract_topics("tuns2 x99vopsit") == ["tuns", "vopsit"]
    assert extract_topics("Bună ziua! Hello, good evening, thank you!") == []


def test_facts_announcers_names_days_and_addresses_are_not_topics() -> None:
    assert extract_topics("Si maine? Ma numesc Ana, telefonul meu e 0722 123 456") == []
    assert extract_topics("Puteti sa ma programati joi la 10 pentru tuns?") == ["programare", "tuns"]
    assert extract_topics("Numele meu este Ion Popescu, vreau vopsit") == ["vopsit"]
    assert extract_topics("Hi, I'm Sarah. My number is +44 20 7946 0958, email sarah.jones@gmail.com") == []
    assert extract_topics("Can I book a haircut on Friday afternoon? See www.example.com/hair") == ["booking", "haircut"]
    assert extract_topics("Rezervați-mi o masă sâmbătă seara") == ["rezervare", "masa"]
    assert extract_topics("Sunt bine, vreau manichiură") == ["manichiura"], "'bine' is no name, and no topic"


def test_language() -> None:
    assert detect_language("Bună") == "ro"
    assert detect_language("Buna ziua, la ce ora inchideti azi?") == "ro"
    assert detect_language("Hello, aveti loc azi?") == "ro"
    assert detect_language("Are you open tonight?") == "en"
    assert detect_language("Thanks!") == "en"
    assert detect_language("") == "en"
    assert detect_language("10:30?") == "en"
    assert detect_language("10:30?", default="ro") == "ro"
    assert detect_language("Can I book for tomorrow?", default="ro") == "en"


TEXT = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzăâîșşțţĂÂÎȘŢ XYZ0123456789.,!?'-")), max_size=200)


@given(TEXT, st.integers(1, 8))
def test_topics_are_folded_keywords_in_order(text: str, limit: int) -> None:
    topics = extract_topics(text, limit)
    assert len(topics) <= limit and len(set(topics)) == len(topics)
    assert all(t.isascii() and t.isalpha() and t.islower() and len(t) >= 3 and t not in STOP_WORDS for t in topics)
    candidates = topic_words(text)
    assert set(candidates) <= {CANONICAL.get(w, w) for w in words(text)}, "each is a (canonical) word of the text"
    assert topics == list(dict.fromkeys(candidates))[:limit], "in order of first appearance, none skipped"


@given(TEXT)
def test_topics_and_language_ignore_diacritics_only_where_promised(text: str) -> None:
    assert extract_topics(text) == extract_topics(text.translate(ASCII))
    assert extract_topics(text) == extract_topics(text.upper())
    if any(c in text for c in "ăâîșşțţĂÂÎȘŢ"):
        assert detect_language(text) == "ro"
