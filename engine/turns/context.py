"""The prompt of a turn, built from the state within a token budget.

What goes in, in order: the rules of the script, the story's setting, the scene, who is
present (with personality, speech, mood and intent), what each present character privately
knows, relationships among those present, player characters, flags, active arc and episode
goals, lore entries triggered by recent words, summaries of older turns recalled because
they may matter now (engine.turns.memory), summaries of earlier events (the eight turns
before the transcript, and back to the latest chapter of the story so far when there is
room, so no turn is left out while chapters lag behind), the recent
transcript (each turn's lines under its number, as what each character saw is numbered, so
the model can tell who was there), and this turn's player input. The story so far (chapter
summaries of older turns, engine.turns.chapters) comes right after the story's setting.

When the whole does not fit the budget, parts are dropped in this order, each step logged
in the turn's event: summaries beyond the eight before the transcript (oldest first, as
many at once as the excess needs), the oldest transcript lines (down to the last four), recalled
summaries (oldest first), chapters of the story so far (oldest first), older summaries
(down to two), lore entries (last triggered first), each present character's older
witnessed knowledge, and finally the story's long descriptions (backstory first).
This turn's player input, the rules and the scene are never dropped; nor are the last four
transcript lines, unless dropping them makes the prompt fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from engine.llm.tokens import estimate_tokens
from engine.state.snapshot import CharacterState, Snapshot
from engine.stories.schema import LoreEntry
from engine.turns.memory import RECALLED, Recalled
from engine.turns.prompt_parts import MAX_WITNESSED, ContextParts, Summary

MIN_TRANSCRIPT_LINES = 4
MIN_SUMMARIES = 2
MAX_SUMMARIES = 8  # of the turns just before the transcript
LORE_SCAN_LINES = 6
MAX_LORE = 6


@dataclass(frozen=True)
class BuiltContext:
    messages: list[dict[str, str]]
    tokens: int
    budget: int
    dropped: dict[str, int] = field(default_factory=dict)
    lore: tuple[str, ...] = ()


SCRIPT_RULES = """You are the narrator of a group roleplay and the voice of every non-player \
character. Write what happens next as a script. Start every paragraph with the speaker's name \
and a colon: "Narrator:" for narration, or a character's exact name for that character's \
words and actions, for example:
Narrator: Rain drums on the glass roof.
{example}: "You're late."
Rules:
- Never write words, thoughts, feelings or actions for the player characters ({players}); \
they are played by people. Describe the world's response and stop where a player would act.
- Characters know only what the "knows" lists and the events they witnessed tell them; they \
never act on what another character privately knows. The transcript, the story so far and the \
recalled events are your record as narrator, not what everyone knows: a character knows of a \
turn only if they saw it (listed under what they saw) or were told.
- Stay in the story's tone. Keep the reply under {words} words. No notes outside the script."""


def _character_block(c: CharacterState, full: bool) -> str:
    parts = [f"- {c.name} ({c.role})"]
    if c.appearance:
        parts.append(f"  Looks: {c.appearance}")
    if c.personality:
        parts.append(f"  Personality: {c.personality}")
    if c.traits:
        parts.append(f"  Traits: {', '.join(c.traits)}")
    if c.speech:
        parts.append(f"  Speech: {c.speech}")
    if full and c.backstory:
        parts.append(f"  Backstory: {c.backstory}")
    if c.mood:
        parts.append(f"  Mood now: {c.mood}")
    if c.intent:
        parts.append(f"  Wants now: {c.intent}")
    return "\n".join(parts)


def triggered_lore(state: Snapshot, recent_text: str) -> list[LoreEntry]:
    text = recent_text.casefold()
    here = state.scene_location
    inside: set[str] = set()
    while here is not None and here not in inside:
        inside.add(here)
        location = state.locations.get(here)
        here = location.parent_key if location else None
    found = [
        entry
        for entry in state.story.lore
        if (entry.location is None or entry.location in inside)
        and any(keyword.casefold() in text for keyword in entry.keys)
    ]
    return found[:MAX_LORE]


class _Sections:
    """The prompt's pieces, with the knobs the budget loop turns."""

    def __init__(self, parts: ContextParts, words: int) -> None:
        self.parts = parts
        self.words = words
        self.transcript = list(parts.transcript)
        self.summaries = MAX_SUMMARIES  # how many of the turns before the transcript
        # ...and how many more, back to the latest chapter, while there is room.
        self.extra = len(parts.summaries)
        self.player_names = {c.name for c in parts.state.characters.values() if c.is_player}
        self.recalled = list(parts.recalled)
        self.chapters = list(parts.chapters)
        recent = " ".join(line.text for line in parts.transcript[-LORE_SCAN_LINES:] + parts.inputs)
        self.lore = triggered_lore(parts.state, recent)
        self.witnessed = MAX_WITNESSED
        self.backstories = True

    def system(self) -> str:
        state = self.parts.state
        present = [c for c in state.present_characters() if not c.is_player]
        players = [c for c in state.present_characters() if c.is_player]
        rules = SCRIPT_RULES.format(
            example=present[0].name if present else "Mira",
            players=", ".join(c.name for c in players) or "none present",
            words=self.words,
        )
        story = state.story.story
        sections = [rules, f"STORY: {story.title}\n{story.summary}".strip()]
        if self.chapters:
            sections.append(
                "THE STORY SO FAR:\n" + "\n".join(f"- {c.label()}" for c in self.chapters)
            )
        if story.content_notes:
            sections.append(f"Content notes: {story.content_notes}")
        location = state.locations.get(state.scene_location or "")
        scene = f"SCENE: {location.name if location else 'somewhere'}"
        if location and location.description:
            scene += f" — {location.description}"
        scene += f"\nTime: {state.time_of_day}. Weather: {state.weather}. Tone: {state.tone}."
        sections.append(scene)
        if present:
            sections.append(
                "CHARACTERS PRESENT (voiced by you):\n"
                + "\n".join(_character_block(c, self.backstories) for c in present)
            )
        absent = [c.name for c in state.characters.values() if not c.present and not c.is_player]
        if absent:
            sections.append(
                "Not here (they may arrive only if the story calls for it): " + ", ".join(absent)
            )
        if players:
            sections.append(
                "PLAYER CHARACTERS (never write for them):\n"
                + "\n".join(
                    f"- {c.name}" + (f": {c.personality}" if c.personality else "") for c in players
                )
            )
        sections += self._knowledge(present)
        sections += self._relationships(present + players)
        sections += self._goals()
        if self.lore:
            sections.append("LORE:\n" + "\n".join(f"- {e.content}" for e in self.lore))
        recalled = self._recalled()
        if recalled:
            sections.append(
                "LONG AGO (recalled because it may matter now):\n"
                + "\n".join(f"- (turn {r.turn}) {r.summary}" for r in recalled)
            )
        earlier = self._earlier()
        if earlier:
            sections.append(
                "EARLIER:\n" + "\n".join(f"- (turn {s.turn}) {s.text}" for s in earlier)
            )
        return "\n\n".join(sections)

    def _earlier(self) -> list[Summary]:
        """The summaries the prompt shows (see `_older`): the `summaries` newest, and more
        back to the latest chapter while there is room (`extra`)."""
        older = self._older()
        return older[-(self.summaries + self._extra(older)) :]

    def _older(self) -> list[Summary]:
        """The summaries of the turns before the oldest one the transcript shows, so that
        no turn falls between the two when the budget shortens the transcript; and that
        turn's own when the transcript starts after its input (every turn starts with the
        players' input), so what the players did is not lost."""
        if not self.transcript:
            return list(self.parts.summaries)
        first = self.transcript[0].turn
        if first is None:
            return []  # it shows the story from its opening
        if self.transcript[0].speaker not in self.player_names:
            first += 1  # cut in half: its summary says what its input was
        return [s for s in self.parts.summaries if s.turn < first]

    def _extra(self, older: list[Summary]) -> int:
        """How many summaries beyond `summaries` reach back to the latest chapter."""
        chapters = self.parts.chapters
        since = [s for s in older if s.turn > chapters[-1].last_turn] if chapters else older
        return min(self.extra, max(0, len(since) - self.summaries))

    def _recalled(self) -> list[Recalled]:
        """The best RECALLED recalled summaries of turns older than any the summaries or the
        transcript show (recall cannot know how far back those reach once the budget has
        spoken), oldest first."""
        earlier = self._earlier()
        if earlier:
            shown_from: float = earlier[0].turn
        elif self.transcript:
            shown_from = self.transcript[0].turn or 0  # (the opening: every turn is shown)
        else:
            shown_from = float("inf")
        best = [r for r in self.recalled if r.turn < shown_from][:RECALLED]
        return sorted(best, key=attrgetter("turn"))

    def _knowledge(self, present: Sequence[CharacterState]) -> list[str]:
        blocks = []
        keys = {c.key: c.name for c in present}
        for key, name in keys.items():
            facts = [f for f in self.parts.knowledge if f.character_key == key]
            private = [f.fact for f in facts if f.source == "story"]
            learned = [f"(turn {f.turn}) {f.fact}" for f in facts if f.source == "told"]
            seen = [f"(turn {f.turn}) {f.fact}" for f in facts if f.source == "witnessed"]
            seen = seen[-self.witnessed :] if self.witnessed else []
            if private or learned or seen:
                lines = []
                if private:
                    lines.append(f"What {name} alone knows (no one else does):")
                    lines += [f"- {fact}" for fact in private]
                if learned:  # in a scene: others there may know it too
                    lines.append(f"What {name} learned:")
                    lines += [f"- {fact}" for fact in learned]
                if seen:
                    lines.append(f"What {name} saw:")
                    lines += [f"- {fact}" for fact in seen]
                blocks.append("\n".join(lines))
        return blocks

    def _relationships(self, people: Sequence[CharacterState]) -> list[str]:
        state = self.parts.state
        keys = {c.key for c in people}
        lines = [
            f"- {state.characters[r.source].name} -> {state.characters[r.target].name}: "
            f"{r.kind}, trust {r.trust:+.2f}, affection {r.affection:+.2f}, "
            f"familiarity {r.familiarity:.2f}"
            for r in state.relationships.values()
            if r.source in keys and r.target in keys
        ]
        return (
            ["RELATIONSHIPS (how the first feels about the second):\n" + "\n".join(lines)]
            if (lines)
            else []
        )

    def _goals(self) -> list[str]:
        state = self.parts.state
        lines = []
        for arc in state.story.arcs:
            progress = state.arcs.get(arc.key)
            if progress is None or progress.status != "active":
                continue
            for episode in arc.episodes:
                if progress.episodes.get(episode.key) == "active":
                    lines.append(f"- {arc.title} / {episode.title}: {episode.goal}")
        flags = ", ".join(f"{k}={v.value!r}" for k, v in sorted(state.flags.items()))
        out = []
        if lines:
            out.append(
                "STORY GOALS NOW (steer gently toward them; never force):\n" + "\n".join(lines)
            )
        if flags:
            out.append(f"FLAGS: {flags}")
        return out

    def user(self) -> str:
        lines: list[str] = []
        turn: int | bool | None = False  # (no line yet)
        for line in self.transcript:  # each turn under its number, as "what X saw" names it
            if line.turn != turn:
                turn = line.turn
                lines.append("[the opening]" if turn is None else f"[turn {turn}]")
            lines.append(line.render())
        recent = "\n".join(lines)
        inputs = "\n".join(line.render() for line in self.parts.inputs)
        parts = []
        if recent:
            parts.append(f"RECENT TRANSCRIPT:\n{recent}")
        parts.append(f"THE PLAYERS NOW:\n{inputs}" if inputs else "Continue the scene.")
        parts.append("Write the next part of the script.")
        return "\n\n".join(parts)

    def shrink(self, over: int) -> tuple[str, int] | None:
        """Drop more, in the documented order, `over` tokens being too many: what and how
        many; None when nothing is left to drop."""
        older = self._older()
        extra = self._extra(older)
        if extra:  # summaries beyond the eight, the oldest first, as many as the excess needs
            shown = older[-(self.summaries + extra) :]
            saved = dropped = 0
            while dropped < extra and saved < over:
                summary = shown[dropped]
                saved += estimate_tokens(f"- (turn {summary.turn}) {summary.text}")
                dropped += 1
            self.extra = extra - dropped
            return "summaries", dropped
        what = self._shrink_one(over)
        return None if what is None else (what, 1)

    def _shrink_one(self, over: int) -> str | None:
        if len(self.transcript) > MIN_TRANSCRIPT_LINES:
            del self.transcript[0]
            return "transcript_lines"
        recalled = self._recalled()
        if recalled:
            self.recalled.remove(recalled[0])
            return "recalled"
        if self.chapters:
            del self.chapters[0]
            return "chapters"
        if self.summaries > MIN_SUMMARIES and len(self._earlier()) > MIN_SUMMARIES:
            self.summaries -= 1
            return "summaries"
        if self.lore:
            self.lore.pop()
            return "lore"
        if self.witnessed > 0:
            self.witnessed -= 1
            return "witnessed"
        if self.backstories:
            self.backstories = False
            return "backstories"
        # The last lines go only if that makes the prompt fit: over budget anyway (the
        # budget is smaller than what is never dropped), the scene keeps its last words.
        left = sum(estimate_tokens(line.render()) for line in self.transcript)
        if self.transcript and left >= over:
            del self.transcript[0]
            return "transcript_lines"
        return None


def build_scene_context(parts: ContextParts, budget: int, reply_words: int = 250) -> BuiltContext:
    sections = _Sections(parts, reply_words)
    dropped: dict[str, int] = {}
    while True:
        system, user = sections.system(), sections.user()
        tokens = estimate_tokens(system) + estimate_tokens(user) + 8
        if tokens <= budget:
            break
        step = sections.shrink(tokens - budget)
        if step is None:
            break
        what, count = step
        dropped[what] = dropped.get(what, 0) + count
    return BuiltContext(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        tokens=tokens,
        budget=budget,
        dropped=dropped,
        lore=tuple(e.key for e in sections.lore),
    )
