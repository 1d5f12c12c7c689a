"""A socket's frame window refuses and lets through exactly the frames `limits`' moving-window
strategy would, on any sequence of frame times."""

from __future__ import annotations

from itertools import accumulate
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from agentstream.adapters.http.rate_limits import Limit, RateLimited, SocketWindow


def taken_by_window(limit: str, times: list[float]) -> list[bool]:
    window = SocketWindow(Limit("socket_frames", parse(limit)))
    out = []
    for t in times:
        try:
            window.hit(t)
            out.append(True)
        except RateLimited:
            out.append(False)
    return out


def taken_by_limits(limit: str, times: list[float]) -> list[bool]:
    clock = mock.Mock()
    with mock.patch("limits.storage.memory.time", clock), mock.patch("limits.strategies.time", clock, create=True):
        storage = MemoryStorage()
        strategy, item, out = MovingWindowRateLimiter(storage), parse(limit), []
        for t in times:
            clock.time.return_value = t
            out.append(strategy.hit(item, "socket"))
        storage.timer.cancel()
    return out


@settings(max_examples=60, deadline=None)
@given(amount=st.integers(1, 5), gaps=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 10.0]), max_size=40))
def test_the_socket_window_decides_as_the_limits_moving_window_does(amount: int, gaps: list[float]) -> None:
    times = [1000.0 + t for t in accumulate(gaps)]
    assert taken_by_window(f"{amount}/10 seconds", times) == taken_by_limits(f"{amount}/10 seconds", times)


def test_a_refused_frame_says_when_to_try_again_and_is_not_counted() -> None:
    window = SocketWindow(Limit("socket_frames", parse("2/minute")))
    window.hit(0.0)
    window.hit(10.0)
    with pytest.raises(RateLimited) as refusal:
        window.hit(15.0)
    assert refusal.value.retry_after_s == 45 and refusal.value.headers["Retry-After"] == "45"
    window.hit(60.5)  # the frame at 0 left the window; the refused one never entered it
    with pytest.raises(RateLimited):
        window.hit(61.0)


def test_each_socket_has_a_window_of_its_own() -> None:
    limit = Limit("socket_frames", parse("1/minute"))
    first, second = SocketWindow(limit), SocketWindow(limit)
    first.hit(0.0)
    second.hit(0.0)
    with pytest.raises(RateLimited):
        first.hit(1.0)
