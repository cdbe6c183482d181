"""What a turn's read keeps for the next turn of the same playthrough: the recent transcript
and what the characters know. The next read then asks only for the messages written since
and for the knowledge of characters not kept, instead of about 90 messages and a dozen
index ranges of knowledge (together half of the read's database time).

What is kept is exactly what a full read would give (`store.read_turn`): the lines of done
turns (and the opening) by message id, the newest `size` of them; and each character's
facts in the prompt's order (by turn), at most MAX_PRIVATE_FACTS private ones and the
newest MAX_WITNESSED witnessed ones. A turn's read ends with `KeptReading.seen`: the lines it
read plus its input as lines of the turn it answers. Once that turn is stored, the facts it
wrote are added (`learned`) and the whole is kept under the state cache's version
(`StateCache.put`), so anything else that writes a playthrough (undo, retry, a moderator's
edit, a join, a dropped turn) bumps that version and the next read is a full one. The turn
count is checked as well: if another process wrote a turn, nothing kept is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from engine.turns.context import MAX_PRIVATE_FACTS, MAX_WITNESSED, KnownFact, Line

Row = tuple[int, Line]  # (message id, line)
WITNESSED = "witnessed"


@dataclass(frozen=True)
class KeptReading:
    """The recent transcript (lines by message id, oldest first; messages newer than
    `after` are still to be read) and the facts of each character read (by character id)."""

    lines: tuple[Row, ...]
    after: int
    knowledge: Mapping[int, tuple[KnownFact, ...]]

    @classmethod
    def seen(
        cls,
        transcript: list[Row],
        inputs: list[Row],
        turn: int,
        size: int,
        newest: int,
        knowledge: Mapping[int, tuple[KnownFact, ...]],
    ) -> KeptReading:
        """What the read of turn `turn`, answering `inputs`, leaves for the next: the turn's
        posts are newer than `newest` and come with the next read."""
        answered = [(message_id, line._replace(turn=turn)) for message_id, line in inputs]
        lines = sorted(transcript + answered, key=itemgetter(0))[-size:] if size else []
        return cls(tuple(lines), newest, knowledge)

    def learned(self, facts: Iterable[Mapping[str, Any]], keys: Mapping[int, str]) -> KeptReading:
        """With the facts a turn wrote (knowledge rows: character_id, fact, source,
        turn_number), in the order written; `keys`: character keys by id."""
        knowledge = dict(self.knowledge)
        for row in facts:
            character_id = row["character_id"]
            known = knowledge.get(character_id)
            if known is None:
                continue  # not read yet: the next read that needs it reads it
            key = keys[character_id]
            fact = KnownFact(key, row["fact"], row["source"], row["turn_number"])
            if known and known[-1].turn > fact.turn:
                del knowledge[character_id]  # would not go last: read it afresh
                continue
            knowledge[character_id] = _with(known, fact)
        return KeptReading(self.lines, self.after, knowledge)


def _with(known: tuple[KnownFact, ...], fact: KnownFact) -> tuple[KnownFact, ...]:
    """`known` and `fact`, as the read would give them: the first private facts by turn,
    the newest witnessed ones."""
    if fact.source != WITNESSED:
        private = sum(1 for f in known if f.source != WITNESSED)
        return known if private >= MAX_PRIVATE_FACTS else (*known, fact)
    seen = [i for i, f in enumerate(known) if f.source == WITNESSED]
    if len(seen) >= MAX_WITNESSED:
        oldest = seen[0]
        known = known[:oldest] + known[oldest + 1 :]
    return (*known, fact)


class KeptReadings:
    """One `KeptReading` per playthrough, valid for one state version and turn count."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[int, int, KeptReading]] = {}

    def get(self, playthrough_id: int, version: int, turn_count: int) -> KeptReading | None:
        entry = self._kept.get(playthrough_id)
        if entry is None:
            return None
        if entry[:2] != (version, turn_count):
            del self._kept[playthrough_id]  # stale for good
            return None
        return entry[2]

    def put(
        self, playthrough_id: int, version: int | None, turn_count: int, kept: KeptReading
    ) -> None:
        """Keep `kept` for the state `version` (None: the state was not kept either)."""
        if version is None:
            self._kept.pop(playthrough_id, None)
        else:
            self._kept[playthrough_id] = (version, turn_count, kept)
