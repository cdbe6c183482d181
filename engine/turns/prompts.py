"""The director's prompt, within the same token budget as the scene's.

The director needs the names it may use (characters and places by key), the values it
changes, the players' input and the scene that followed. When that does not fit the budget
(small local models): first only the characters and places the turn can touch (those
present, the scene, and any named in the turn's text) and no relationship values; then the
players' words and the scene's lines shortened, each to a fair share of what room is left
(a short line keeps all of it, the longest give up the most)."""

from __future__ import annotations

from engine.llm.tokens import estimate_messages_tokens, fit_lines
from engine.state.snapshot import Snapshot
from engine.turns.director import director_instructions
from engine.turns.script import ScriptPost


def director_messages(
    state: Snapshot, posts: list[ScriptPost], inputs: str, budget: int | None = None
) -> list[dict[str, str]]:
    """The director sees names and current values, the players' input and the scene."""
    script = [f"{p.speaker.name}: {p.text}" for p in posts]
    said = inputs.splitlines()
    system = _system(state, None)
    if budget is None or _tokens(system, _user(said, script)) <= budget:
        return _messages(system, _user(said, script))
    system = _system(state, f"{inputs}\n" + "\n".join(script))
    if _tokens(system, _user(said, script)) > budget:
        room = budget - _tokens(system, _user([], []))
        fitted = fit_lines([*said, *script], room)
        said, script = fitted[: len(said)], fitted[len(said) :]
    return _messages(system, _user(said, script))


def _system(state: Snapshot, lean_for: str | None) -> str:
    """The instructions and the state; with `lean_for` (the turn's text), only what the
    turn can touch."""
    named = lean_for.casefold() if lean_for is not None else ""

    def touched(key: str, name: str) -> bool:
        return lean_for is None or key in named or name.casefold() in named

    people = "\n".join(
        f"- {c.key} = {c.name} ({'player character' if c.is_player else c.role}, "
        f"{'present' if c.present else 'absent'}, mood: {c.mood or 'unknown'})"
        for c in state.characters.values()
        if (not c.is_player or c.key in state.player_character_keys())
        and (c.present or touched(c.key, c.name))
    )
    places = "\n".join(
        f"- {loc.key} = {loc.name}"
        for loc in state.locations.values()
        if loc.key == state.scene_location or touched(loc.key, loc.name)
    )
    present = {c.key for c in state.present_characters()}
    relations = "\n".join(
        f"- {r.source}->{r.target}: trust {r.trust:+.2f}, affection {r.affection:+.2f}, "
        f"familiarity {r.familiarity:.2f}"
        for r in state.relationships.values()
        if r.source in present and r.target in present
    )
    flags = ", ".join(f"{k}={v.value!r}" for k, v in sorted(state.flags.items())) or "none"
    sections = [
        director_instructions(),
        f"CHARACTERS:\n{people}",
        f"LOCATIONS (scene is at {state.scene_location}):\n{places}",
    ]
    if lean_for is None:
        sections.append(f"RELATIONSHIPS NOW:\n{relations or '- none among those present'}")
    sections.append(f"FLAGS NOW: {flags}")
    return "\n\n".join(sections)


def _user(said: list[str], script: list[str]) -> str:
    inputs = "\n".join(said) or "(no input)"
    scene = "\n".join(script)
    return (
        f"THE PLAYERS:\n{inputs}\n\nTHE SCENE THAT FOLLOWED:\n{scene}\n\n"
        "Return the JSON object now."
    )


def _tokens(system: str, user: str) -> int:
    return estimate_messages_tokens(_messages(system, user))


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
