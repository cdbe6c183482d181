"""Changes as people read them: the story's names for locations, arcs and episodes.

The state editor labels characters by name as it records a change (`ChangeView.label`), but
a location, an arc or an episode is stored by its key and only the story file has its name.
Every front end shows the same lines, so the engine names them before handing them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from engine.results import ChangeView
from engine.stories.schema import StoryFile


def named_changes(changes: Iterable[ChangeView], story: StoryFile) -> tuple[ChangeView, ...]:
    """`changes` with location values and arc and episode targets given their names."""
    locations = {location.key: location.name for location in story.locations}
    arcs: dict[str, str] = {}
    for arc in story.arcs:
        arcs[arc.key] = arc.title
        arcs.update({f"{arc.key}/{ep.key}": f"{arc.title} / {ep.title}" for ep in arc.episodes})
    out = []
    for change in changes:
        if change.kind == "location" or (change.kind, change.target) == ("scene", "location"):
            before, after = change.before, change.after
            change = replace(
                change, before=locations.get(before, before), after=locations.get(after, after)
            )
        elif change.kind in ("arc", "episode"):
            change = replace(change, label=arcs.get(change.target, change.target))
        out.append(change)
    return tuple(out)
