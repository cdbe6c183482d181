"""What a turn's prompt is built from (engine.turns.context): transcript lines, summaries,
what characters know, and the read parts together (`ContextParts`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.state.snapshot import Snapshot
from engine.turns.chapters import Chapter
from engine.turns.memory import Recalled

_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
MAX_WITNESSED = 6
# What a character's block shows of each source of knowledge: (how many, the newest ones
# rather than the first): the story's facts, then what they were told and what they saw
# lately (older events are in the summaries).
KNOWLEDGE_SHOWN = {"story": (20, False), "told": (10, True), "witnessed": (MAX_WITNESSED, True)}


class Line(NamedTuple):
    """One transcript line as the prompt shows it (a tuple: a turn builds ~100 of them)."""

    speaker: str
    text: str
    turn: int | None = None

    def render(self) -> str:
        # A blank line inside a post (an opening of several paragraphs) would read as the
        # end of the transcript section.
        text = _BLANK_LINES.sub("\n", self.text) if "\n\n" in self.text else self.text
        return f"{self.speaker}: {text}"


class Summary(NamedTuple):
    """The director's summary of one turn."""

    turn: int
    text: str


class KnownFact(NamedTuple):
    character_key: str
    fact: str
    source: str
    turn: int


@dataclass
class ContextParts:
    state: Snapshot
    transcript: list[Line]
    inputs: list[Line]
    knowledge: list[KnownFact]
    summaries: list[Summary]  # the latest turns' (the prompt picks those before the transcript)
    recalled: list[Recalled] = field(default_factory=list)  # older turns (engine.turns.memory)
    chapters: list[Chapter] = field(default_factory=list)  # the story so far, oldest first

    def inputs_text(self) -> str:
        return "\n".join(line.render() for line in self.inputs)
