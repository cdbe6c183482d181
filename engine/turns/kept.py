"""What a turn's read keeps for the next turn of the same playthrough: the recent transcript
and what the characters know. The next read then asks only for the messages written since
and for the knowledge of characters not kept, instead of about 90 messages and a dozen
index ranges of knowledge (together half of the read's database time).

What is kept is exactly what a full read would give (`store.read_turn`): the lines of done
turns (and the opening) by message id, the newest `size` of them; and each character's
facts in the order learned, as many of each source as the prompt shows (`KNOWLEDGE_SHOWN`).
A turn's read ends with `KeptReading.seen`: the lines it read plus its input as lines of
the turn it answers. Once that turn is stored, the facts it wrote are added (`learned`)
and the whole is kept under the state cache's version (`StateCache.put`), so anything
else in this process that writes a playthrough (undo, retry, a moderator's edit, a join, a
dropped turn) bumps that version and the next read is a full one. The turn count is
checked as well, which catches another process's turn, though not its undo followed by a
turn (the count is as it was): like the state cache, this assumes one process writes each
playthrough (one per range of shards, design §9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

from engine.turns.prompt_parts import KNOWLEDGE_SHOWN, KnownFact, Line

Row = tuple[int, Line]  # (message id, line)


@dataclass(frozen=True)
class KeptReading:
    """The recent transcript (lines by message id, oldest first; messages newer than
    `after` are still to be read) and the facts of each character read (by character id)."""

    lines: tuple[Row, ...]
    after: int
    knowledge: Mapping[int, tuple[KnownFact, ...]]
    turn: int = 0  # the turn the read was for
    size: int = 0  # lines in the transcript
    # The oldest turn the next read's transcript will hold (0: the opening), once the turn's
    # posts are known (`learned`).
    first_turn: int | None = None

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
        return cls(tuple(lines), newest, knowledge, turn, size)

    def learned(
        self, facts: Iterable[Mapping[str, Any]], keys: Mapping[int, str], posts: int
    ) -> KeptReading:
        """With the facts the turn wrote (knowledge rows: character_id, fact, source,
        turn_number), in the order written (`keys`: character keys by id), and the number
        of its posts, which the next read brings."""
        knowledge = dict(self.knowledge)
        for row in facts:
            character_id = row["character_id"]
            known = knowledge.get(character_id)
            if known is None:
                continue  # not read yet: the next read that needs it reads it
            key = keys[character_id]
            fact = KnownFact(key, row["fact"], row["source"], row["turn_number"])
            knowledge[character_id] = _with(known, fact)  # the newest: written last
        turns = [line.turn for _, line in self.lines] + [self.turn] * posts
        shown = turns[-self.size :] if self.size else []
        first = (shown[0] or 0) if shown else None
        return replace(self, knowledge=knowledge, first_turn=first)


def _with(known: tuple[KnownFact, ...], fact: KnownFact) -> tuple[KnownFact, ...]:
    """`known` and the newer `fact`, as the read would give them (`KNOWLEDGE_SHOWN`)."""
    limit, newest = KNOWLEDGE_SHOWN.get(fact.source, (0, False))
    same = [i for i, f in enumerate(known) if f.source == fact.source]
    if len(same) < limit:
        return (*known, fact)
    if not newest or not same:
        return known
    oldest = same[0]
    return (*known[:oldest], *known[oldest + 1 :], fact)


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
