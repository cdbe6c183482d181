"""How the story's state reads in a turn's prompt: character blocks, what each character
knows, relationships, goals and flags, triggered lore. Pure text; what is shown and what
the budget leaves out is decided in engine.turns.context."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from engine.state.snapshot import CharacterState, RelationshipState, Snapshot
from engine.stories.schema import LoreEntry
from engine.turns.prompt_parts import KnownFact

MAX_LORE = 6
# How much of a character the block shows (the budget lowers it): everything; without
# looks and traits; without personality and speech either (name, role, mood, intent).
ALL_DETAILS, NO_LOOKS, BARE = 2, 1, 0


def dated(turn: int, text: str) -> str:
    """A list line of something that happened in a turn: a summary, a fact learned."""
    return f"- (turn {turn}) {text}"


def turn_heading(turn: int | None) -> str:
    """The line over a turn's lines in the transcript."""
    return "[the opening]" if turn is None else f"[turn {turn}]"


def character_block(c: CharacterState, backstory: bool, details: int = ALL_DETAILS) -> str:
    parts = [f"- {c.name} ({c.role})"]
    if c.appearance and details >= ALL_DETAILS:
        parts.append(f"  Looks: {c.appearance}")
    if c.personality and details >= NO_LOOKS:
        parts.append(f"  Personality: {c.personality}")
    if c.traits and details >= ALL_DETAILS:
        parts.append(f"  Traits: {', '.join(c.traits)}")
    if c.speech and details >= NO_LOOKS:
        parts.append(f"  Speech: {c.speech}")
    if backstory and c.backstory:
        parts.append(f"  Backstory: {c.backstory}")
    if c.mood:
        parts.append(f"  Mood now: {c.mood}")
    if c.intent:
        parts.append(f"  Wants now: {c.intent}")
    return "\n".join(parts)


def knowledge_blocks(
    present: Sequence[CharacterState],
    facts: Sequence[KnownFact],
    witnessed: int,
    left_out: Collection[KnownFact] = (),
) -> list[str]:
    """What each present character knows: the story's private facts, what they were told,
    and the `witnessed` newest things they saw; `left_out` facts are not shown."""
    blocks = []
    for c in present:
        own = [f for f in facts if f.character_key == c.key and f not in left_out]
        private = [f"- {f.fact}" for f in own if f.source == "story"]
        learned = [dated(f.turn, f.fact) for f in own if f.source == "told"]
        seen = [dated(f.turn, f.fact) for f in own if f.source == "witnessed"]
        seen = seen[-witnessed:] if witnessed else []
        if private or learned or seen:
            lines = []
            if private:
                lines.append(f"What {c.name} alone knows (no one else does):")
                lines += private
            if learned:  # in a scene: others there may know it too
                lines.append(f"What {c.name} learned:")
                lines += learned
            if seen:
                lines.append(f"What {c.name} saw:")
                lines += seen
            blocks.append("\n".join(lines))
    return blocks


def relationships_among(
    state: Snapshot, people: Sequence[CharacterState]
) -> list[RelationshipState]:
    keys = {c.key for c in people}
    return [r for r in state.relationships.values() if r.source in keys and r.target in keys]


def relationship_line(state: Snapshot, r: RelationshipState) -> str:
    return (
        f"- {state.characters[r.source].name} -> {state.characters[r.target].name}: "
        f"{r.kind}, trust {r.trust:+.2f}, affection {r.affection:+.2f}, "
        f"familiarity {r.familiarity:.2f}"
    )


def goal_lines(state: Snapshot) -> list[str]:
    """The goals of the active episodes of active arcs."""
    lines = []
    for arc in state.story.arcs:
        progress = state.arcs.get(arc.key)
        if progress is None or progress.status != "active":
            continue
        for episode in arc.episodes:
            if progress.episodes.get(episode.key) == "active":
                lines.append(f"- {arc.title} / {episode.title}: {episode.goal}")
    return lines


def flags_line(state: Snapshot) -> str:
    return ", ".join(f"{k}={v.value!r}" for k, v in sorted(state.flags.items()))


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
