"""Arc and episode progression: after every turn (and moderator edit) conditions are evaluated.

Rules, in story order:
- a locked arc becomes active when its `starts_when` holds (no condition: at once);
- in an active arc, a locked episode becomes active when its `starts_when` holds, or, without
  a condition, when the episode before it is completed (the first one: at once);
- an active episode is completed when its `completes_when` holds; its `sets_flags` are set;
- an active arc is completed when its `completes_when` holds, or, without one, when all its
  episodes are completed. Episodes it leaves unfinished stay as they are, never complete,
  and are no goal of the narrator's; views show them as "skipped".
Transitions can enable further transitions (a flag set by one episode opens the next), so
rounds repeat until nothing changes. Statuses only move forward here (locked, active,
completed), so every round that changes something moves an arc or episode on, and two
rounds per arc and per episode are always enough: a chain of episodes, each completed by
the flag the one before it sets, is followed to its end in one pass.
"""

from __future__ import annotations

from functools import lru_cache

from engine.results import ChangeView
from engine.rules.conditions import Condition, parse_condition
from engine.state.editor import StateEditor
from engine.state.snapshot import Snapshot
from engine.stories.schema import Arc


@lru_cache(maxsize=4096)
def _condition(text: str) -> Condition:
    return parse_condition(text)


def _holds(text: str | None, state: Snapshot, default: bool) -> bool:
    if text is None:
        return default
    return _condition(text).evaluate(state)


async def _arc_round(arc: Arc, state: Snapshot, editor: StateEditor, reason: str) -> bool:
    progress = state.arcs.get(arc.key)
    if progress is None or progress.status == "completed":
        return False
    if progress.status == "locked":
        if _holds(arc.starts_when, state, default=True):
            await editor.set(
                "arc", arc.key, "active", reason or "the arc's opening condition holds"
            )
            return True
        return False
    changed = False
    previous_done = True
    for episode in arc.episodes:
        status = progress.episodes.get(episode.key, "locked")
        target = f"{arc.key}/{episode.key}"
        if status == "locked":
            if _holds(episode.starts_when, state, default=previous_done):
                await editor.set("episode", target, "active", reason or "its condition holds")
                changed = True
        elif status == "active" and _holds(episode.completes_when, state, default=False):
            await editor.set("episode", target, "completed", reason or "its goal is reached")
            for name, value in episode.sets_flags.items():
                await editor.set(
                    "flag", name, value, f"episode {episode.title!r} completed", actor="story"
                )
            changed = True
        previous_done = status == "completed"
    if not changed:
        all_done = all(progress.episodes.get(e.key) == "completed" for e in arc.episodes)
        if _holds(arc.completes_when, state, default=all_done):
            await editor.set("arc", arc.key, "completed", reason or "the arc is resolved")
            changed = True
    return changed


async def advance_arcs(editor: StateEditor, state: Snapshot, reason: str = "") -> list[ChangeView]:
    """Apply every arc and episode transition the state allows; returns the changes.

    `state` is the snapshot the editor's changes were made on: changes not yet in it are
    applied to it in memory (it is updated in place), so no reload is needed."""
    start = len(editor.changes)
    seen = 0
    arcs = state.story.arcs
    rounds = 2 * (len(arcs) + sum(len(arc.episodes) for arc in arcs)) + 1
    for _ in range(rounds):
        for change in editor.changes[seen:]:
            state.apply(change)
        seen = len(editor.changes)
        changed = False
        for arc in arcs:
            changed = await _arc_round(arc, state, editor, reason) or changed
        if not changed:
            break
    for change in editor.changes[seen:]:  # (only if the rounds ran out)
        state.apply(change)
    return editor.changes[start:]
