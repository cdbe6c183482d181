"""Moderator actions. Each one is recorded as Changes with the moderator's user id, is listed
in the event log, and is followed by arc progression (a flag set by hand can open an episode).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from engine.errors import InvalidInput, NotFound
from engine.results import ChangeView, FlagValue, FlagView
from engine.rules.conditions import parse_condition
from engine.state.arcs import advance_arcs
from engine.state.editor import RELATIONSHIP_FIELDS, StateEditor
from engine.state.naming import named_changes
from engine.state.snapshot import Snapshot
from engine.stories.schema import (
    AFFECTION_RANGE,
    FAMILIARITY_RANGE,
    KEY_PATTERN,
    TRUST_RANGE,
    Arc,
    Episode,
)
from engine.text import without_controls
from engine.turns.director import MAX_FLAG_TEXT, flag_value_problem
from engine.usecases.base import EngineCore, find_key

MAX_SUMMARY = 300  # an event log line; every change is in its data
RANGES = {"trust": TRUST_RANGE, "affection": AFFECTION_RANGE, "familiarity": FAMILIARITY_RANGE}
SCENE_TEXT_FIELDS = ("time_of_day", "weather", "tone")
Edit = Callable[[StateEditor, Snapshot], Awaitable[None]]


class ModerationUseCases(EngineCore):
    async def _moderate(
        self,
        channel_id: int,
        moderator_id: int,
        edit: Edit,
        check: Callable[[Snapshot], None] | None = None,
    ) -> list[ChangeView]:
        """Run `edit` and the arc transitions it allows in one transaction; the event log
        gets the changes with the story's names (`Mira -> Vesna`, not what was typed).
        `check` sees the state after both and may refuse it (nothing is written then)."""
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id)
            state, version = await self._versioned_snapshot(session, pt)
            editor = self._editor(session, pt, actor="moderator", user_id=moderator_id)
            await edit(editor, state)
            if not editor.changes:  # (the write is dropped: nothing to log either)
                raise InvalidInput("Nothing to change: it is that way already.")
            await advance_arcs(editor, state, "after a moderator edit")
            if check is not None:
                check(state)
            await editor.save()
            changes = list(named_changes(editor.changes, state.story))
            lines = [c.describe() for c in changes]
            summary = "; ".join(lines)
            if len(summary) > MAX_SUMMARY:
                summary = summary[: MAX_SUMMARY - 1] + "…"
            self._log_event(
                session, pt, "edit", summary, {"user_id": moderator_id, "changes": lines}
            )
        self.states.put(state, version)
        return changes

    async def set_flag(
        self, channel_id: int, moderator_id: int, name: str, value: FlagValue
    ) -> list[ChangeView]:
        name = name.strip()
        if not re.match(KEY_PATTERN, name) or len(name) > 48:
            raise InvalidInput(
                "A flag name uses lowercase letters, digits and underscores, starting with a "
                "letter (for example `gate_open`)."
            )
        if isinstance(value, str):
            value = " ".join(without_controls(value).split())
            if not 0 < len(value) <= MAX_FLAG_TEXT:
                raise InvalidInput(f"A flag's text needs 1 to {MAX_FLAG_TEXT} characters.")
        problem = flag_value_problem(value)
        if problem:
            raise InvalidInput(f"A flag cannot hold that value: {problem}.")

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            await editor.set("flag", name, value, "set by a moderator")

        return await self._moderate(channel_id, moderator_id, edit)

    async def unset_flag(self, channel_id: int, moderator_id: int, name: str) -> list[ChangeView]:
        name = name.strip()

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            if name not in state.flags:
                raise NotFound(
                    f"There is no flag {name!r}. Flags: {', '.join(state.flags) or 'none'}."
                )
            await editor.set("flag", name, None, "unset by a moderator")

        return await self._moderate(channel_id, moderator_id, edit)

    async def set_relationship(
        self,
        channel_id: int,
        moderator_id: int,
        source: str,
        target: str,
        *,
        trust: float | None = None,
        affection: float | None = None,
        familiarity: float | None = None,
    ) -> list[ChangeView]:
        values = {"trust": trust, "affection": affection, "familiarity": familiarity}
        for field, value in values.items():
            low, high = RANGES[field]
            if isinstance(value, bool) or (value is not None and not low <= value <= high):
                raise InvalidInput(f"{field} must be between {low:g} and {high:g}.")
        if all(v is None for v in values.values()):
            raise InvalidInput("Give at least one of trust, affection or familiarity.")

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            names = {k: c.name for k, c in state.characters.items()}
            a = find_key(source, names, "character")
            b = find_key(target, names, "character")
            if a == b:
                raise InvalidInput("A character has no relationship with itself.")
            for field in RELATIONSHIP_FIELDS:
                value = values[field]
                if value is not None:
                    await editor.set(field, f"{a}->{b}", float(value), "set by a moderator")

        return await self._moderate(channel_id, moderator_id, edit)

    async def set_scene(
        self,
        channel_id: int,
        moderator_id: int,
        *,
        location: str | None = None,
        time_of_day: str | None = None,
        weather: str | None = None,
        tone: str | None = None,
    ) -> list[ChangeView]:
        texts = {"time_of_day": time_of_day, "weather": weather, "tone": tone}
        for field, value in texts.items():
            if value is not None:
                value = texts[field] = " ".join(without_controls(value).split())
                if not 0 < len(value) <= 100:
                    raise InvalidInput(f"{field.replace('_', ' ')} needs 1 to 100 characters.")

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            if location is not None:
                names = {k: loc.name for k, loc in state.locations.items()}
                key = find_key(location, names, "location")
                # Characters who are present move along with the scene; those already
                # there join it. The same place again is no move: who left stays out.
                if key != state.scene_location:
                    await editor.set("scene", "location", key, "moved by a moderator")
                    for c in state.present_characters():
                        await editor.set("location", c.key, key, "moved with the scene")
                    for c in state.characters.values():
                        if not c.present and not c.is_player and c.location_key == key:
                            await editor.set("present", c.key, True, "was already there")
            for field, value in texts.items():
                if value is not None:
                    await editor.set("scene", field, value.strip(), "set by a moderator")

        return await self._moderate(channel_id, moderator_id, edit)

    async def character_enter(
        self, channel_id: int, moderator_id: int, character: str
    ) -> list[ChangeView]:
        return await self._presence(channel_id, moderator_id, character, True)

    async def character_leave(
        self, channel_id: int, moderator_id: int, character: str
    ) -> list[ChangeView]:
        return await self._presence(channel_id, moderator_id, character, False)

    async def _presence(
        self, channel_id: int, moderator_id: int, character: str, present: bool
    ) -> list[ChangeView]:
        async def edit(editor: StateEditor, state: Snapshot) -> None:
            names = {k: c.name for k, c in state.characters.items() if not c.is_player}
            key = find_key(character, names, "story character")
            if state.characters[key].present == present:
                where = "already in" if present else "not in"
                raise InvalidInput(f"{names[key]} is {where} the scene.")
            await editor.set("present", key, present, "by a moderator")
            if present and state.scene_location:
                await editor.set("location", key, state.scene_location, "joined the scene")

        return await self._moderate(channel_id, moderator_id, edit)

    async def complete_episode(
        self, channel_id: int, moderator_id: int, arc: str, episode: str
    ) -> list[ChangeView]:
        """Complete an episode and set its flags; what follows it opens as the story says.
        Refused when that would leave its arc two active episodes (see `_one_active`)."""
        found: list[tuple[Arc, Episode]] = []

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            story_arc, ep = _episode_of(state, arc, episode)
            found.append((story_arc, ep))
            arc_key = story_arc.key
            if state.arcs[arc_key].episodes.get(ep.key, "locked") == "completed":
                # (completing it again would set its flags again, over newer values)
                raise InvalidInput(f"{story_arc.title} / {ep.title} is already completed.")
            if state.arcs[arc_key].status != "active":
                await editor.set("arc", arc_key, "active", "by a moderator")
            await editor.set("episode", f"{arc_key}/{ep.key}", "completed", "by a moderator")
            for name, value in ep.sets_flags.items():
                await editor.set("flag", name, value, "episode completed by a moderator")

        def check(state: Snapshot) -> None:
            story_arc, ep = found[0]
            _one_active(story_arc, state, f"Completing {ep.title}")

        return await self._moderate(channel_id, moderator_id, edit, check)

    async def reopen_episode(
        self, channel_id: int, moderator_id: int, arc: str, episode: str
    ) -> list[ChangeView]:
        """Make an episode the one its arc is at: it is active again, and later episodes go
        back to locked unless the story opens them on its own (their flags stay as they are).
        Refused when its goal (or its completed arc's condition) still holds, and when that
        would leave its arc two active episodes (see `_one_active`)."""
        found: list[tuple[Arc, Episode]] = []

        async def edit(editor: StateEditor, state: Snapshot) -> None:
            story_arc, ep = _episode_of(state, arc, episode)
            found.append((story_arc, ep))
            arc_key = story_arc.key
            progress = state.arcs[arc_key]
            # What the story would complete again in this very edit (setting its flags
            # again, over newer values) is refused, with the reason, rather than "reopened".
            if progress.episodes.get(ep.key, "locked") != "active":
                _refuse_if_holds(
                    ep.completes_when, state, f"{story_arc.title} / {ep.title}", "its goal"
                )
            if progress.status != "active":  # (a locked arc opened here would close too)
                _refuse_if_holds(story_arc.completes_when, state, story_arc.title, "its condition")
            if progress.status != "active":
                await editor.set("arc", arc_key, "active", "by a moderator")
            await editor.set("episode", f"{arc_key}/{ep.key}", "active", "by a moderator")
            # Later episodes that follow the story's order wait for this one again (left
            # completed, the one after it would open at once). One with a `starts_when`
            # that holds keeps its state: the story opens it whatever the order.
            index = [e.key for e in story_arc.episodes].index(ep.key)
            previous = "active"
            for later in story_arc.episodes[index + 1 :]:
                status = progress.episodes.get(later.key, "locked")
                if later.starts_when is not None:
                    opens = parse_condition(later.starts_when).evaluate(state)
                else:
                    opens = previous == "completed"
                if status != "locked" and not opens:
                    status = "locked"
                    await editor.set(
                        "episode",
                        f"{arc_key}/{later.key}",
                        status,
                        f"the arc went back to {ep.title}",
                    )
                previous = status
            if not editor.changes:
                raise InvalidInput(f"{story_arc.title} / {ep.title} is already active.")

        def check(state: Snapshot) -> None:
            story_arc, ep = found[0]
            _one_active(story_arc, state, f"Reopening {ep.title}")

        return await self._moderate(channel_id, moderator_id, edit, check)


def _episode_of(state: Snapshot, arc: str, episode: str) -> tuple[Arc, Episode]:
    arcs = {a.key: a for a in state.story.arcs}
    story_arc = arcs[find_key(arc, {k: a.title for k, a in arcs.items()}, "arc")]
    episodes = {e.key: e for e in story_arc.episodes}
    key = find_key(episode, {k: e.title for k, e in episodes.items()}, "episode")
    return story_arc, episodes[key]


def _refuse_if_holds(condition: str | None, state: Snapshot, title: str, what: str) -> None:
    """Refuse reopening what `condition` would complete again at once, naming the condition
    and the flags it tests as they are now (who set them, and when)."""
    if condition is None:
        return
    parsed = parse_condition(condition)
    if not parsed.evaluate(state):
        return
    flags = []
    for name in sorted(parsed.flags):
        flag = state.flags.get(name)
        if flag is None:
            flags.append(f"{name} is unset")
        else:
            flags.append(FlagView(name, flag.value, flag.set_by, flag.set_at_turn).describe())
    now = f": {'; '.join(flags)}" if flags else ""
    raise InvalidInput(
        f"{title} would be completed again at once: {what} `{condition}` still holds{now}. "
        "Change that first, then reopen it."
    )


def _one_active(arc: Arc, state: Snapshot, action: str) -> None:
    """Refuse (`action` is what the moderator asked for) when the arc would have two active
    episodes after a moderator's episode edit and the arc transitions it allowed. Episodes
    with a `starts_when` that holds are left out: the story runs them beside the others
    (stories.md), and locked, they would open again at once."""
    progress = state.arcs[arc.key]
    if progress.status != "active":
        return  # (episodes of a completed arc do not move; views show them as skipped)
    active = [
        e
        for e in arc.episodes
        if progress.episodes.get(e.key) == "active"
        and not (e.starts_when is not None and parse_condition(e.starts_when).evaluate(state))
    ]
    if len(active) > 1:
        first, second = active[0].title, active[1].title
        raise InvalidInput(
            f"{action} would leave {arc.title} with two active episodes, {first} and "
            f"{second}; an arc runs one episode at a time. Complete {first} first, or "
            "reopen the episode the arc should be at (the ones after it go back to locked)."
        )
