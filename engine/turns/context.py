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
in the turn's event (where a step has many pieces, as many go at once as the excess needs):
summaries beyond the eight before the transcript (oldest first), the oldest transcript lines
(down to the last four), recalled summaries (oldest first), chapters of the story so far
(oldest first), older summaries (down to two), lore entries (last triggered first), each
present character's older witnessed knowledge, and the characters' backstories. Budgets
that small (a few thousand tokens: small local models) go on: the last two summaries, the
names of those not here, flags, relationships (least familiar first), the characters' looks
and traits, the player characters' descriptions, the story's summary, what characters were
told (oldest first), the characters' personality and speech, their private knowledge from
the story (last listed first), and the goals. Last of all, and only if that makes the
prompt fit, the transcript's last lines and then the players' words, cut to their first
INPUT_KEPT tokens (longest first; the players are told, and the messages are stored whole).
Never dropped: the rules, the story's title and content notes, the scene, each present
character's name, role, mood and intent, and the players' characters' names. With that
floor (about 600-900 tokens for the bundled stories) under the budget, the prompt fits it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from engine.llm.tokens import estimate_messages_tokens, estimate_tokens, shortened
from engine.turns.memory import RECALLED, Recalled
from engine.turns.prompt_parts import MAX_WITNESSED, ContextParts, KnownFact, Line, Summary
from engine.turns.scene_text import (
    ALL_DETAILS,
    BARE,
    NO_LOOKS,
    character_block,
    dated,
    flags_line,
    goal_lines,
    knowledge_blocks,
    relationship_line,
    relationships_among,
    triggered_lore,
    turn_heading,
)

MIN_TRANSCRIPT_LINES = 4
MIN_SUMMARIES = 2
MAX_SUMMARIES = 8  # of the turns just before the transcript
LORE_SCAN_LINES = 6
INPUT_KEPT = 50  # tokens of each player's input kept however small the budget


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


class _Sections:
    """The prompt's pieces, with the knobs the budget loop turns."""

    def __init__(self, parts: ContextParts, words: int) -> None:
        self.parts = parts
        self.words = words
        state = parts.state
        self.present = [c for c in state.present_characters() if not c.is_player]
        self.players = [c for c in state.present_characters() if c.is_player]
        self.transcript = list(parts.transcript)
        self.inputs = list(parts.inputs)
        self.summaries = MAX_SUMMARIES  # how many of the turns before the transcript
        # ...and how many more, back to the latest chapter, while there is room.
        self.extra = len(parts.summaries)
        self.player_names = {c.name for c in state.characters.values() if c.is_player}
        self.recalled = list(parts.recalled)
        self.chapters = list(parts.chapters)
        recent = " ".join(line.text for line in parts.transcript[-LORE_SCAN_LINES:] + parts.inputs)
        self.lore = triggered_lore(state, recent)
        self.witnessed = MAX_WITNESSED
        self.backstories = True
        # Under a small budget (see the module's docstring for the order):
        self.absent = True
        self.flags = True
        self.relationships = relationships_among(state, self.present + self.players)
        self.details = ALL_DETAILS
        self.player_details = True
        self.story_summary = True
        self.left_out: set[KnownFact] = set()  # told facts, then the story's private ones
        self.goals = True

    def system(self) -> str:
        state = self.parts.state
        present, players = self.present, self.players
        rules = SCRIPT_RULES.format(
            example=present[0].name if present else "Mira",
            players=", ".join(c.name for c in players) or "none present",
            words=self.words,
        )
        story = state.story.story
        summary = story.summary if self.story_summary else ""
        sections = [rules, f"STORY: {story.title}\n{summary}".strip()]
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
                + "\n".join(character_block(c, self.backstories, self.details) for c in present)
            )
        absent = [c.name for c in state.characters.values() if not c.present and not c.is_player]
        if absent and self.absent:
            sections.append(
                "Not here (they may arrive only if the story calls for it): " + ", ".join(absent)
            )
        if players:
            sections.append(
                "PLAYER CHARACTERS (never write for them):\n"
                + "\n".join(
                    f"- {c.name}"
                    + (f": {c.personality}" if c.personality and self.player_details else "")
                    for c in players
                )
            )
        sections += knowledge_blocks(present, self.parts.knowledge, self.witnessed, self.left_out)
        if self.relationships:
            sections.append(
                "RELATIONSHIPS (how the first feels about the second):\n"
                + "\n".join(relationship_line(state, r) for r in self.relationships)
            )
        goals = goal_lines(state) if self.goals else []
        if goals:
            sections.append(
                "STORY GOALS NOW (steer gently toward them; never force):\n" + "\n".join(goals)
            )
        flags = flags_line(state) if self.flags else ""
        if flags:
            sections.append(f"FLAGS: {flags}")
        if self.lore:
            sections.append("LORE:\n" + "\n".join(f"- {e.content}" for e in self.lore))
        recalled = self._recalled()
        if recalled:
            sections.append(
                "LONG AGO (recalled because it may matter now):\n"
                + "\n".join(dated(r.turn, r.summary) for r in recalled)
            )
        earlier = self._earlier()
        if earlier:
            sections.append("EARLIER:\n" + "\n".join(dated(s.turn, s.text) for s in earlier))
        return "\n\n".join(sections)

    def _earlier(self) -> list[Summary]:
        """The summaries the prompt shows (see `_older`): the `summaries` newest, and more
        back to the latest chapter while there is room (`extra`)."""
        if not self.summaries:
            return []
        older = self._older()
        return older[-(self.summaries + self._extra(older)) :]

    def _older(self) -> list[Summary]:
        """The summaries of the turns before the oldest one the transcript shows, so that
        no turn falls between the two when the budget shortens the transcript; and that
        turn's own when the transcript starts after its input (every turn starts with the
        players' input), so what the players did is not lost."""
        if not self.transcript:
            return list(self.parts.summaries)
        first = self._counts_from(self.transcript[0])
        if first is None:
            return []  # it shows the story from its opening
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

    def user(self) -> str:
        lines: list[str] = []
        turn: int | bool | None = False  # (no line yet)
        for line in self.transcript:  # each turn under its number, as "what X saw" names it
            if line.turn != turn:
                turn = line.turn
                lines.append(turn_heading(turn))
            lines.append(line.render())
        recent = "\n".join(lines)
        inputs = "\n".join(line.render() for line in self.inputs)
        parts = []
        if recent:
            parts.append(f"RECENT TRANSCRIPT:\n{recent}")
        parts.append(f"THE PLAYERS NOW:\n{inputs}" if inputs else "Continue the scene.")
        parts.append("Write the next part of the script.")
        return "\n\n".join(parts)

    def shrink(self, over: int) -> tuple[str, int] | None:
        """Drop more, in the documented order, `over` tokens being too many: what and how
        many; None when nothing is left to drop. Where a step has many small pieces, it
        drops as many at once as the excess needs."""
        older = self._older()
        extra = self._extra(older)
        if extra:  # summaries beyond the eight, the oldest first
            shown = older[-(self.summaries + extra) :]
            dropped = _enough((dated(s.turn, s.text) for s in shown[:extra]), over)
            self.extra = extra - dropped
            return "summaries", dropped
        # None left (or none to begin with): fewer summaries from here on must not bring
        # the older ones back as extras (the step would drop nothing it counts).
        self.extra = 0
        if len(self.transcript) > MIN_TRANSCRIPT_LINES:
            # At most up to where the summaries shown change (see `_older`): past it, a
            # summary leaves or comes, which the lines' sizes do not tell.
            lines = self._same_summaries(self.transcript[:-MIN_TRANSCRIPT_LINES])
            dropped = _enough(self._line_pieces(lines), over)
            del self.transcript[:dropped]
            # The summaries this uncovers are no extras: those go before any line does.
            self.extra = 0
            return "transcript_lines", dropped
        return self._shrink_history(over) or self._shrink_state(over) or self._shrink_scene(over)

    def _same_summaries(self, lines: list[Line]) -> list[Line]:
        """The first of `lines`, up to and with the first whose dropping changes the turn
        `_older` counts from (which the transcript's next line decides)."""
        for n, line in enumerate(lines):
            if self._counts_from(self.transcript[n + 1]) != self._counts_from(line):
                return lines[: n + 1]
        return lines

    def _line_pieces(self, lines: list[Line]) -> Iterator[str]:
        """What dropping each of the transcript's first `lines` takes from the prompt: the
        line and its line break, and the last of a turn's lines its turn's heading too."""
        for n, line in enumerate(lines):
            piece = line.render() + "\n"
            if self.transcript[n + 1].turn != line.turn:
                piece += turn_heading(line.turn) + "\n"
            yield piece

    def _counts_from(self, first: Line) -> int | None:
        """The turn `_older` counts from when the transcript starts with `first`: its own,
        or the next when it starts after the turn's input (every turn starts with the
        players' input; its summary then says what that input was); None at the opening."""
        if first.turn is None:
            return None
        return first.turn + (first.speaker not in self.player_names)

    def _shrink_history(self, over: int) -> tuple[str, int] | None:
        recalled = self._recalled()
        if recalled:  # (spare candidates may take their places)
            dropped = _enough((dated(r.turn, r.summary) for r in recalled), over)
            for r in recalled[:dropped]:
                self.recalled.remove(r)
            return "recalled", dropped
        if self.chapters:
            dropped = _enough((f"- {c.label()}" for c in self.chapters), over)
            del self.chapters[:dropped]
            return "chapters", dropped
        earlier = self._earlier()
        if self.summaries > MIN_SUMMARIES and len(earlier) > MIN_SUMMARIES:
            spare = earlier[: len(earlier) - MIN_SUMMARIES]
            dropped = _enough((dated(s.turn, s.text) for s in spare), over)
            self.summaries = min(self.summaries, len(earlier)) - dropped
            return "summaries", dropped
        if self.lore:
            dropped = _enough((f"- {e.content}" for e in reversed(self.lore)), over)
            del self.lore[len(self.lore) - dropped :]
            return "lore", dropped
        seen: dict[str, list[str]] = {}
        for f in self.parts.knowledge:
            if f.source == "witnessed":
                seen.setdefault(f.character_key, []).append(dated(f.turn, f.fact))
        # (Levels no character has facts for show nothing: they are not counted.)
        self.witnessed = min(self.witnessed, max(map(len, seen.values()), default=0))
        if self.witnessed > 0:
            # Each step takes every present character's oldest witnessed fact shown.
            levels = [
                "\n".join(own[-level] for own in seen.values() if len(own) >= level)
                for level in range(self.witnessed, 0, -1)
            ]
            dropped = _enough(levels, over)
            self.witnessed -= dropped
            return "witnessed", dropped
        if self.backstories and any(c.backstory for c in self.present):
            self.backstories = False
            return "backstories", 1
        last = len(self._earlier())
        if last:  # a small budget from here on: the last summaries
            self.summaries = 0
            return "summaries", last
        return None

    def _shrink_state(self, over: int) -> tuple[str, int] | None:
        """A small budget: the state's lesser parts, each as much as the excess needs."""
        state = self.parts.state
        if self.absent and any(not c.present for c in state.characters.values()):
            self.absent = False
            return "absent_names", 1
        if self.flags and state.flags:
            self.flags = False
            return "flags", 1
        if self.relationships:  # the least familiar first
            by_familiarity = sorted(self.relationships, key=attrgetter("familiarity"))
            dropped = _enough((relationship_line(state, r) for r in by_familiarity), over)
            gone = {id(r) for r in by_familiarity[:dropped]}
            self.relationships = [r for r in self.relationships if id(r) not in gone]
            return "relationships", dropped
        if self.details == ALL_DETAILS and any(c.appearance or c.traits for c in self.present):
            self.details = NO_LOOKS
            return "looks", 1
        if self.player_details and any(c.personality for c in self.players):
            self.player_details = False
            return "player_descriptions", 1
        if self.story_summary and state.story.story.summary:
            self.story_summary = False
            return "story_summary", 1
        shown = [f for f in self.parts.knowledge if f not in self.left_out]
        told = sorted((f for f in shown if f.source == "told"), key=attrgetter("turn"))
        if told:  # the oldest first
            dropped = _enough((dated(f.turn, f.fact) for f in told), over)
            self.left_out.update(told[:dropped])
            return "told", dropped
        if self.details > BARE and any(c.personality or c.speech for c in self.present):
            self.details = BARE
            return "voices", 1
        secrets = [f for f in reversed(shown) if f.source == "story"]
        if secrets:  # the last listed first
            dropped = _enough((f"- {f.fact}" for f in secrets), over)
            self.left_out.update(secrets[:dropped])
            return "secrets", dropped
        if self.goals and goal_lines(state):
            self.goals = False
            return "goals", 1
        return None

    def _shrink_scene(self, over: int) -> tuple[str, int] | None:
        """Last, the scene's last lines, then the players' words shortened, but only if
        that makes the prompt fit: over budget anyway (the budget is smaller than what is
        never dropped), the reply is better for them."""
        lines = [line.render() for line in self.transcript]
        cuttable = sum(estimate_tokens(line) for line in lines) + sum(
            estimate_tokens(line.text) - estimate_tokens(shortened(line.text, INPUT_KEPT))
            for line in self.inputs
        )
        if cuttable < over:
            return None
        if lines:
            dropped = _enough(lines, over)
            del self.transcript[:dropped]
            return "transcript_lines", dropped
        # The longest input first, by as much as the excess takes.
        costs = [estimate_tokens(line.text) for line in self.inputs]
        index = max(range(len(costs)), key=costs.__getitem__)
        line = self.inputs[index]
        shorter = shortened(line.text, max(INPUT_KEPT, costs[index] - over))
        self.inputs[index] = line._replace(text=shorter)
        return "input_characters", len(line.text) - len(shorter)


def _enough(pieces: Iterable[str], over: int) -> int:
    """How many of `pieces`, dropped in order, save `over` tokens (all of them if they
    cannot): at least one."""
    saved = count = 0
    for piece in pieces:
        count += 1
        saved += estimate_tokens(piece)
        if saved >= over:
            break
    return max(count, 1)


def build_scene_context(parts: ContextParts, budget: int, reply_words: int = 250) -> BuiltContext:
    sections = _Sections(parts, reply_words)
    dropped: dict[str, int] = {}
    for _ in range(1_000):  # each step drops something; this only bounds a bug
        messages = [
            {"role": "system", "content": sections.system()},
            {"role": "user", "content": sections.user()},
        ]
        tokens = estimate_messages_tokens(messages)
        if tokens <= budget:
            break
        step = sections.shrink(tokens - budget)
        if step is None:
            break
        what, count = step
        dropped[what] = dropped.get(what, 0) + count
    return BuiltContext(
        messages=messages,
        tokens=tokens,
        budget=budget,
        dropped=dropped,
        lore=tuple(e.key for e in sections.lore),
    )
