"""Reading what a turn's prompts need, and the director's prompt."""

from __future__ import annotations

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.state.snapshot import CharacterState, Snapshot
from engine.turns.context import MAX_WITNESSED, ContextParts, KnownFact, Line
from engine.turns.director import director_instructions
from engine.turns.script import ScriptPost

MAX_PRIVATE_FACTS = 20
MAX_SUMMARIES = 8


MAX_INPUTS_PER_TURN = 50


async def load_recent(
    session: AsyncSession, playthrough_id: int, recent_messages: int
) -> tuple[list[Line], list[tuple[int, Line]]]:
    """The recent transcript and the player input waiting for a turn, in one query: waiting
    input is always the newest (a turn takes all of it), so both sit at the end."""
    waits = m.Message.turn_id.is_(None) & (m.Message.kind == "player")
    rows = (
        await session.execute(
            select(m.Message.id, m.Message.speaker_name, m.Message.content, waits)
            .outerjoin(m.Turn, m.Turn.id == m.Message.turn_id)
            .where(
                m.Message.playthrough_id == playthrough_id,
                (m.Turn.status == "done")
                | (m.Message.turn_id.is_(None) & m.Message.kind.in_(("narrator", "player"))),
            )
            .order_by(m.Message.id.desc())
            .limit(recent_messages + MAX_INPUTS_PER_TURN)
        )
    ).all()
    transcript: list[Line] = []
    waiting: list[tuple[int, Line]] = []
    for message_id, speaker, text, is_waiting in reversed(rows):
        if is_waiting:
            waiting.append((message_id, Line(speaker, text)))
        else:
            transcript.append(Line(speaker, text))
    return transcript[-recent_messages:], waiting


async def load_context_parts(
    session: AsyncSession,
    playthrough: m.Playthrough,
    state: Snapshot,
    transcript: list[Line],
    inputs: list[Line],
) -> ContextParts:
    """Everything else the scene prompt is built from, in a few indexed queries."""
    pid = playthrough.id
    knowledge = await _knowledge_of(
        session, [c for c in state.present_characters() if not c.is_player]
    )
    summaries = (
        await session.scalars(
            select(m.Memory.content)
            .where(
                m.Memory.playthrough_id == pid,
                m.Memory.kind == "summary",
                m.Memory.turn_to <= playthrough.turn_count - MAX_SUMMARIES,
            )
            .order_by(m.Memory.turn_to.desc())
            .limit(MAX_SUMMARIES)
        )
    ).all()
    return ContextParts(state, transcript, inputs, knowledge, list(reversed(summaries)))


async def _knowledge_of(session: AsyncSession, characters: list[CharacterState]) -> list[KnownFact]:
    """Private facts and the latest witnessed ones of each character, in one statement made
    of small index range scans (a window over all their knowledge grows with history)."""
    if not characters:
        return []
    keys = {c.id: c.key for c in characters}
    columns = (
        m.Knowledge.character_id,
        m.Knowledge.fact,
        m.Knowledge.source,
        m.Knowledge.turn_number,
    )
    parts = []
    for character_id in keys:
        mine = m.Knowledge.character_id == character_id
        parts.append(
            select(*columns)
            .where(mine, m.Knowledge.source != "witnessed")
            .order_by(m.Knowledge.turn_number)
            .limit(MAX_PRIVATE_FACTS)
            .subquery()
        )
        parts.append(
            select(*columns)
            .where(mine, m.Knowledge.source == "witnessed")
            .order_by(m.Knowledge.turn_number.desc())
            .limit(MAX_WITNESSED)
            .subquery()
        )
    query = union_all(*(select(part) for part in parts))
    rows = (await session.execute(query)).all()
    facts = [KnownFact(keys[cid], fact, source, turn) for cid, fact, source, turn in rows]
    facts.sort(key=lambda f: (f.character_key, f.turn))
    return facts


def director_messages(
    state: Snapshot, posts: list[ScriptPost], inputs: str
) -> list[dict[str, str]]:
    """The director sees names and current values, the players' input and the scene."""
    people = "\n".join(
        f"- {c.key} = {c.name} ({'player character' if c.is_player else c.role}, "
        f"{'present' if c.present else 'absent'}, mood: {c.mood or 'unknown'})"
        for c in state.characters.values()
        if not c.is_player or c.key in state.player_character_keys()
    )
    places = "\n".join(f"- {loc.key} = {loc.name}" for loc in state.locations.values())
    present = {c.key for c in state.present_characters()}
    relations = "\n".join(
        f"- {r.source}->{r.target}: trust {r.trust:+.2f}, affection {r.affection:+.2f}, "
        f"familiarity {r.familiarity:.2f}"
        for r in state.relationships.values()
        if r.source in present and r.target in present
    )
    flags = ", ".join(f"{k}={v.value!r}" for k, v in sorted(state.flags.items())) or "none"
    system = "\n\n".join(
        [
            director_instructions(),
            f"CHARACTERS:\n{people}",
            f"LOCATIONS (scene is at {state.scene_location}):\n{places}",
            f"RELATIONSHIPS NOW:\n{relations or '- none among those present'}",
            f"FLAGS NOW: {flags}",
        ]
    )
    script = "\n".join(f"{p.speaker.name}: {p.text}" for p in posts)
    user = f"THE PLAYERS:\n{inputs or '(no input)'}\n\nTHE SCENE THAT FOLLOWED:\n{script}\n\n"
    user += "Return the JSON object now."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
