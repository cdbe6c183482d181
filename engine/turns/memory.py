"""Recalling older events: the summaries of earlier turns that matter to this one.

A turn's prompt carries the recent transcript and the summaries of the turns just before it
(`store.read_turn`). Older turns would be forgotten, so a few of their summaries are recalled:

- relevant ones first: on SQLite with FTS5, the full-text index `memories_fts` (made by a
  migration, kept in step by triggers) is searched for the words of this turn's input
  (common words left out), ranked by BM25 weighted by the director's importance;
- then the most important (importance >= IMPORTANT) older ones, so turning points are not
  forgotten even when nobody names them (the only kind of recall where FTS5 is missing).

At most RECALLED are kept, oldest first. This costs one more indexed read, only in stories
longer than what the prompt already covers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text

from engine.db import models as m
from engine.db.statements import Call, Runner

RECALLED = 4
IMPORTANT = 0.7
MAX_TERMS = 16
_WORD = re.compile(r"[^\W\d_]{3,}")
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


def _full_text() -> Any:
    # FTS5 has no Core construct; this is SQLite's own syntax. bm25 is negative (lower is
    # better), so multiplying by more importance ranks an important memory higher.
    return text(
        "SELECT m.turn_to, m.content FROM memories_fts "
        "JOIN memories AS m ON m.id = memories_fts.rowid "
        "WHERE memories_fts MATCH :query AND m.kind = 'summary' AND m.turn_to <= :until "
        "ORDER BY bm25(memories_fts, 1.0, 0.0) * (0.5 + m.importance) LIMIT :limit"
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


def search_query(playthrough_id: int, texts: Iterable[str]) -> str | None:
    """An FTS5 query for the words of `texts` (OR), within one playthrough; None without
    words worth searching for."""
    terms: dict[str, None] = {}
    for chunk in texts:
        for word in _WORD.findall(chunk.casefold()):
            if word not in _STOPWORDS:
                terms[word] = None
                if len(terms) == MAX_TERMS:
                    break
        if len(terms) == MAX_TERMS:
            break
    if not terms:
        return None
    words = " OR ".join(f'"{word}"' for word in terms)  # letters only: nothing to escape
    return f"playthrough_id : {int(playthrough_id)} AND ({words})"


class MemoryRecall:
    """Recall for one database; whether it has the full-text index is asked once."""

    def __init__(self, sqlite: bool) -> None:
        self.full_text: bool | None = None if sqlite else False

    async def recall(
        self, runner: Runner, playthrough_id: int, until: int, texts: Iterable[str]
    ) -> list[Recalled]:
        """Up to RECALLED summaries of turns up to `until`, relevant to `texts` first."""
        if until < 1:
            return []
        if self.full_text is None:
            self.full_text = bool(await runner.all(_fts_table))
        calls: list[Call] = [
            (
                _important,
                {"pid": playthrough_id, "least": IMPORTANT, "until": until, "limit": RECALLED},
            )
        ]
        query = search_query(playthrough_id, texts) if self.full_text else None
        if query is not None:
            calls.append((_full_text, {"query": query, "until": until, "limit": RECALLED}))
        important, *relevant = await runner.finish(calls)
        chosen: dict[int, str] = {}
        for turn, summary in [*(relevant[0] if relevant else []), *important]:
            if len(chosen) == RECALLED:
                break
            chosen.setdefault(int(turn), summary)
        return [Recalled(turn, chosen[turn]) for turn in sorted(chosen)]
