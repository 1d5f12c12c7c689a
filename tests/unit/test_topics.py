"""Topics and language of Romanian and English messages."""

from __future__ import annotations

from agentstream.projections.topics import detect_language, extract_topics


def test_romanian_topics_fold_diacritics_and_drop_stop_words() -> None:
    assert extract_topics("Bună ziua, aș vrea o programare pentru vopsit și tuns mâine") == [
        "programare", "vopsit", "tuns", "maine"]
    assert extract_topics("PROGRAMARE programare Programare") == ["programare"]


def test_english_topics() -> None:
    assert extract_topics("Hello! Do you have a vegan menu and a table for four tonight?") == [
        "vegan", "menu", "table", "four", "tonight"]


def test_limit_and_noise() -> None:
    assert extract_topics("12345 !!! :) ok", limit=3) == []
    assert len(extract_topics("alpha beta gamma delta epsilon zeta", limit=3)) == 3


def test_language() -> None:
    assert detect_language("Bună ziua") == "ro"
    assert detect_language("Buna ziua, la ce ora inchideti azi?") == "ro"
    assert detect_language("Are you open tonight?") == "en"
    assert detect_language("") == "en"
