"""The command line's messages stay one line each, whatever the terminal's width (or none, in a
pipe), so a message can be grepped and an error is one line."""

from __future__ import annotations

import pytest

from agentstream.cli import console


def test_a_long_message_is_printed_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    message = "receipt written to /tmp/" + "a-long-folder/" * 12 + "receipt.json; items left after the erasure: none"
    console.print(message)
    assert capsys.readouterr().err == message + "\n"
