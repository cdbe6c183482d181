"""The director's prompt."""

from __future__ import annotations

from engine.state.snapshot import Snapshot
from engine.turns.director import director_instructions
from engine.turns.script import ScriptPost


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
