"""The recent transcript of each live playthrough, kept from one turn to the next, so that a
turn's read asks only for the messages written since the last one instead of reading the
whole window again (about 90 rows: a third of the read's database time).

What is kept is exactly what a full read would give: the lines of done turns (and the
opening) by message id, the newest `size` of them. A turn's read ends with `seen`, the lines
it read plus its input as lines of the turn it answers; once that turn is stored the entry
is kept under the state cache's version (`StateCache.put`), so anything that writes a
playthrough other than a turn (undo, retry, a moderator's edit, a dropped turn) bumps that
version and the next read is a full one. The turn count is checked as well: if another
process wrote a turn, the kept lines are not used either.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

from engine.turns.context import Line

Row = tuple[int, Line]  # (message id, line)


@dataclass(frozen=True)
class KeptTranscript:
    """The recent transcript as of a turn's read: lines by message id, oldest first; every
    message newer than `after` is still to be read."""

    lines: tuple[Row, ...]
    after: int


def seen(
    transcript: list[Row], inputs: list[Row], turn: int, size: int, newest: int
) -> KeptTranscript:
    """What the transcript will be once turn `turn`, answering `inputs`, is stored (its posts
    are newer than `newest` and come with the next read)."""
    answered = [(message_id, line._replace(turn=turn)) for message_id, line in inputs]
    lines = sorted(transcript + answered, key=itemgetter(0))[-size:] if size else []
    return KeptTranscript(tuple(lines), newest)


class KeptTranscripts:
    """One `KeptTranscript` per playthrough, valid for one state version and turn count."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[int, int, KeptTranscript]] = {}

    def get(self, playthrough_id: int, version: int, turn_count: int) -> KeptTranscript | None:
        entry = self._kept.get(playthrough_id)
        if entry is None:
            return None
        if entry[:2] != (version, turn_count):
            del self._kept[playthrough_id]  # stale for good: versions only grow
            return None
        return entry[2]

    def put(
        self, playthrough_id: int, version: int | None, turn_count: int, kept: KeptTranscript
    ) -> None:
        """Keep `kept` for the state `version` (None: the state was not kept either)."""
        if version is None:
            self._kept.pop(playthrough_id, None)
        else:
            self._kept[playthrough_id] = (version, turn_count, kept)
