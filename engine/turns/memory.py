"""Recalling older events: the summaries of earlier turns that matter to this one.

A turn's prompt carries the recent transcript and the summaries of the turns just before it
(`store.read_turn`). Older turns would be forgotten, so a few of their summaries are recalled:

- relevant ones first: on SQLite with FTS5, the full-text index `memories_fts` (made by a
  migration, kept in step by triggers) is searched for the words of this turn's input
  (common words left out). A memory scores for each word it contains, more for a word found
  in few memories (a rare word counts for more than a name found everywhere), weighted by
  the director's importance;
- then the most important (importance >= IMPORTANT) older ones, so turning points are not
  forgotten even when nobody names them (the only kind of recall where FTS5 is missing).

`rank` gives up to CANDIDATES of them, best first (one of the first RECALLED places is kept
for the most important one); the prompt shows the first RECALLED of those older than any
turn it shows otherwise, oldest first (engine.turns.context).
Recall runs only in stories longer than what the prompt already covers, and usually in the
turn's own read round trip (`InputHints`; otherwise in a read of its own). Its work is
bounded: each word is searched on its own and only its PER_WORD newest matches are read.
Ranking every match of one OR query by FTS5's bm25 instead cost 30 ms a turn at 10,000
turns of history (bench/turns.py), since bm25 counts all matches first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text

from engine.db import models as m
from engine.db.statements import Call, Runner

RECALLED = 4
CANDIDATES = 2 * RECALLED  # a few to spare for turns the prompt turns out to show
IMPORTANT = 0.7
MAX_TERMS = 8
PER_WORD = 16
MAX_HINTS = 64
_WORD = re.compile(r"[^\W_]+")
# Words too common to say what an input is about (FTS5 would still find them everywhere).
_COMMON = """
    the and for are but not you your yours all any can had her hers him his how its our out
    was were who why what when where which while with this that these those there their them
    they then than too very just into onto from have has been being will would could should
    shall may might must about above after again against before below between down each few
    more most other some such only own same so off over under until upon also here now one
    two did does doing done get got let say said says see seen look looks like want wants
    ask asks tell tells make makes take takes come comes going goes went well yes yeah okay
"""
_STOPWORDS = frozenset(_COMMON.split())


class Recalled(NamedTuple):
    turn: int
    summary: str


def _word_matches() -> Any:
    # FTS5 has no Core construct; this is SQLite's own syntax. FTS5 walks the matches by
    # rowid, newest first, and stops at the limit. (Its bm25() would count every match of
    # the word first: 0.5 ms a word in 10,000 memories, so rarity is judged here instead.)
    return text(
        "SELECT m.id, m.importance, m.turn_to, m.content "
        "FROM memories_fts JOIN memories AS m ON m.id = memories_fts.rowid "
        "WHERE memories_fts MATCH :query AND m.kind = 'summary' AND m.turn_to <= :until "
        "ORDER BY memories_fts.rowid DESC LIMIT :limit"
    )


def _important() -> Any:
    return (
        select(m.Memory.turn_to, m.Memory.content)
        .where(
            m.Memory.playthrough_id == bindparam("pid"),
            m.Memory.kind == "summary",
            m.Memory.importance >= bindparam("least"),
            m.Memory.turn_to <= bindparam("until"),
        )
        .order_by(m.Memory.importance.desc(), m.Memory.turn_to.desc())
        .limit(bindparam("limit"))
    )


def _fts_table() -> Any:
    return text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memories_fts'")


def search_words(texts: Iterable[str]) -> list[str]:
    """The words of `texts` worth searching for (at most MAX_TERMS, first ones first), as
    FTS5's tokenizer splits them: runs of letters and digits (not numbers alone)."""
    words: dict[str, str] = {}
    for chunk in texts:
        for word in _WORD.findall(chunk):
            key = word.lower()  # FTS5 ignores case itself; this only spots repeats
            if len(word) >= 3 and not word.isdigit() and key not in _STOPWORDS:
                words.setdefault(key, word)
                if len(words) == MAX_TERMS:
                    return list(words.values())
    return list(words.values())


def word_query(playthrough_id: int, word: str) -> str:
    """The FTS5 query for one word (letters and digits: nothing to escape) in one
    playthrough."""
    return f'playthrough_id : {int(playthrough_id)} AND "{word}"'


class MemoryRecall:
    """Recall for one database; whether it has the full-text index is asked once."""

    def __init__(self, sqlite: bool) -> None:
        self.full_text: bool | None = None if sqlite else False

    async def recall(
        self, runner: Runner, playthrough_id: int, until: int, texts: Iterable[str]
    ) -> list[Recalled]:
        """Up to CANDIDATES summaries of turns up to `until`, best first (`rank`)."""
        if until < 1:
            return []
        if self.full_text is None:
            self.full_text = bool(await runner.all(_fts_table))
        words = search_words(texts) if self.full_text else []
        return self.rank(await runner.finish(self.queries(playthrough_id, until, words)))

    def queries(self, playthrough_id: int, until: int, words: list[str]) -> list[Call]:
        """What `recall` runs for these search words (`search_words`); `rank` reads the
        rows. For a caller that runs them with queries of its own."""
        calls: list[Call] = [
            (
                _important,
                {"pid": playthrough_id, "least": IMPORTANT, "until": until, "limit": CANDIDATES},
            )
        ]
        for word in words:
            query = word_query(playthrough_id, word)
            calls.append((_word_matches, {"query": query, "until": until, "limit": PER_WORD}))
        return calls

    @staticmethod
    def rank(results: list[list[tuple[Any, ...]]]) -> list[Recalled]:
        """The recalled summaries from the rows of `queries`, best first."""
        important, *matches = results
        # A word found in few memories says more than one found in many: each match of a
        # word scores 1 / its number of matches (capped at PER_WORD, so a word that common
        # hardly counts), summed over the words, weighted by importance.
        scores: dict[int, float] = {}
        found: dict[int, tuple[int, str]] = {}
        for rows in matches:
            for memory_id, importance, turn, summary in rows:
                weight = (0.5 + importance) / len(rows)
                scores[memory_id] = scores.get(memory_id, 0.0) + weight
                found[memory_id] = (int(turn), summary)
        relevant = sorted(scores, key=lambda i: (-scores[i], -found[i][0]))
        ranked = [found[i] for i in relevant]
        # The best matches, one place kept for a turning point, then whatever is left.
        chosen: dict[int, str] = {}
        for turn, summary in [*ranked[: RECALLED - 1], *important, *ranked[RECALLED - 1 :]]:
            if len(chosen) == CANDIDATES:
                break
            chosen.setdefault(int(turn), summary)
        return [Recalled(turn, summary) for turn, summary in chosen.items()]


class InputHints:
    """The inputs this process stored that no turn has read yet, by channel.

    Recall searches for the words of the input a turn answers, which the turn's read brings;
    searching after it costs a second round trip to the driver. The same process stored
    that input a moment before (`stored`), so the turn guesses its words from here and runs
    recall in the read's own round trip; the guess is checked against the input read, and
    a wrong one (an input from before a restart, a retry) only costs that second trip.
    """

    def __init__(self) -> None:
        self._texts: dict[int, dict[int, str]] = {}

    def stored(self, channel_id: int, message_id: int, text: str) -> None:
        texts = self._texts.setdefault(channel_id, {})
        texts[message_id] = text
        if len(texts) > MAX_HINTS:  # a channel that stores and never plays
            del texts[min(texts)]

    def words(self, channel_id: int) -> list[str] | None:
        """The search words of the inputs waiting in the channel, as far as known here."""
        texts = self._texts.get(channel_id)
        return search_words(texts[i] for i in sorted(texts)) if texts else None

    def read(self, channel_id: int, waiting: Iterable[int], newest: int) -> None:
        """Forget what a turn's read found answered: every input up to `newest` (the
        newest message read) that is not `waiting`."""
        texts = self._texts.get(channel_id)
        if texts is None:
            return
        keep = set(waiting)
        for message_id in [i for i in texts if i <= newest and i not in keep]:
            del texts[message_id]
        if not texts:
            del self._texts[channel_id]
