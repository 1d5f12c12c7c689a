"""The heads of conversations at rest, as this gateway left them: a guess that saves a read.

A widget conversation is at rest once this gateway has sent the customer their reply and
appended its delivery record: the record is then the head, and the customer's next message most
likely goes right after it. So the gateway remembers the record's seq and appends the next
message there without reading the head. The guess is used once and checked by the append (the
event it goes after must exist), so a wrong one (another process appended meanwhile, or `forget`
emptied the stream) costs one failed write and the head read, never a gap or an overwrite.
A reply this gateway does not record (another channel, a socket held elsewhere) drops the guess.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_SIZE = 10_000


class SettledHeads:
    """Stream → the seq this process last appended to it as the conversation came to rest."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._heads: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def settle(self, stream: str, seq: int) -> None:
        self._heads[stream] = seq
        self._heads.move_to_end(stream)
        while len(self._heads) > self._size:
            self._heads.popitem(last=False)

    def drop(self, stream: str) -> None:
        self._heads.pop(stream, None)

    def take(self, stream: str) -> int | None:
        """The guess for `stream`, once: a second message before the next rest reads the head."""
        return self._heads.pop(stream, None)
