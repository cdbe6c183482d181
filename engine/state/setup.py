"""Create a playthrough's rows from a story: locations, characters, scene, flags, arcs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.stories.schema import StoryFile


async def populate_playthrough(
    session: AsyncSession, playthrough: m.Playthrough, story: StoryFile
) -> None:
    """Copy the story's templates into rows owned by `playthrough` (inside the caller's txn)."""
    pid = playthrough.id
    locations: dict[str, m.Location] = {}
    for spec in story.locations:
        place = m.Location(
            playthrough_id=pid, key=spec.key, name=spec.name, description=spec.description
        )
        session.add(place)
        locations[spec.key] = place
    await session.flush()
    for spec in story.locations:
        if spec.parent is not None:
            locations[spec.key].parent_id = locations[spec.parent].id

    start = story.story.start_location
    characters: dict[str, m.Character] = {}
    for c in story.characters:
        row = m.Character(
            playthrough_id=pid,
            key=c.key,
            name=c.name,
            role=c.role,
            avatar_url=c.avatar,
            appearance=c.appearance,
            personality=c.personality,
            traits=list(c.traits),
            speech=c.speech,
            backstory=c.backstory,
            mood=c.mood,
            intent=c.intent,
            location_id=locations[c.location].id if c.location else None,
            # A character is in the scene when it starts where the scene starts.
            present=c.location == start,
        )
        session.add(row)
        characters[c.key] = row
    session.add(
        m.Scene(
            playthrough_id=pid,
            location_id=locations[start].id,
            time_of_day=story.story.time_of_day,
            weather=story.story.weather,
            tone=story.story.tone,
        )
    )
    await session.flush()

    for c in story.characters:
        for fact in c.knows:
            session.add(
                m.Knowledge(
                    playthrough_id=pid,
                    character_id=characters[c.key].id,
                    fact=fact,
                    source="story",
                    turn_number=0,
                    certainty=1.0,
                )
            )
    # Relationships to suggested player characters wait until someone plays them.
    session.add_all(relationship_rows(pid, story, characters))
    for name, value in story.flags.items():
        session.add(m.Flag(playthrough_id=pid, name=name, value=value, set_by="story"))
    for arc in story.arcs:
        arc_row = m.ArcState(playthrough_id=pid, arc_key=arc.key, status="locked")
        session.add(arc_row)
        await session.flush()
        for episode in arc.episodes:
            session.add(
                m.EpisodeState(
                    playthrough_id=pid,
                    arc_state_id=arc_row.id,
                    episode_key=episode.key,
                    status="locked",
                )
            )
    await session.flush()


def relationship_rows(
    playthrough_id: int,
    story: StoryFile,
    characters: dict[str, m.Character],
    involving: str | None = None,
) -> list[m.Relationship]:
    """Rows for the story's relationships whose both ends are in `characters`.

    With `involving`, only those touching that character (a suggested player character who
    has just joined)."""
    rows = []
    for rel in story.relationships:
        pairs = [(rel.source, rel.target)] + ([(rel.target, rel.source)] if rel.mutual else [])
        for source, target in pairs:
            if involving is not None and involving not in (source, target):
                continue
            if source in characters and target in characters:
                rows.append(
                    m.Relationship(
                        playthrough_id=playthrough_id,
                        source_id=characters[source].id,
                        target_id=characters[target].id,
                        kind=rel.kind,
                        trust=rel.trust,
                        affection=rel.affection,
                        familiarity=rel.familiarity,
                        history=[rel.note] if rel.note else [],
                    )
                )
    return rows
