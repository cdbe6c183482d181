"""Joining and leaving a story, and players' input."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.models import utcnow
from engine.db.statements import first, scalar
from engine.errors import InvalidInput, NoPlaythrough, NotFound, NotPlaying, StoryPaused
from engine.results import InputReceipt, PlayerInfo
from engine.state.setup import relationship_rows
from engine.text import (
    clean_name,
    has_visible_text,
    mixed_scripts,
    name_key,
    name_keys,
    name_words,
    without_controls,
)
from engine.turns.script import NARRATOR
from engine.usecases.base import EngineCore

MAX_NAME_CHARS = 40
MAX_DESCRIPTION_CHARS = 300


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_")
    return slug if slug and slug[0].isalpha() else f"pc_{slug or 'player'}"


def _input_checks() -> Any:
    """The channel's live playthrough and the user's character in it, if any."""
    return (
        select(m.Playthrough.guild_id, m.Playthrough.status, m.Player.character_id)
        .outerjoin(
            m.Player,
            (m.Player.playthrough_id == m.Playthrough.id)
            & (m.Player.user_id == bindparam("user"))
            & m.Player.left_at.is_(None),
        )
        .where(m.Playthrough.channel_id == bindparam("channel"), m.Playthrough.status != "ended")
    )


def _collect_window() -> Any:
    return select(m.GuildConfig.collect_window_seconds).where(
        m.GuildConfig.guild_id == bindparam("guild")
    )


def _message_by_discord_id() -> Any:
    return select(m.Message.id).where(m.Message.discord_message_id == bindparam("discord"))


def _store_input() -> Any:
    """Insert the input as the user's character, if the channel's story is active and the
    user plays in it (else nothing)."""
    source = (
        select(
            m.Playthrough.id,
            literal("player"),
            bindparam("user", type_=BigInteger),
            m.Character.id,
            m.Character.name,
            bindparam("content", type_=Text),
            bindparam("discord", type_=BigInteger),
            bindparam("created", type_=m.Message.__table__.c.created_at.type),
        )
        .join(m.Player, m.Player.playthrough_id == m.Playthrough.id)
        .join(m.Character, m.Character.id == m.Player.character_id)
        .where(
            m.Playthrough.channel_id == bindparam("channel"),
            m.Playthrough.status == "active",
            m.Playthrough.status != "ended",  # lets SQLite use the partial index
            m.Player.user_id == bindparam("user"),
            m.Player.left_at.is_(None),
        )
    )
    columns = (
        "playthrough_id",
        "kind",
        "author_user_id",
        "character_id",
        "speaker_name",
        "content",
        "discord_message_id",
        "created_at",
    )
    return insert(m.Message).from_select(columns, source).returning(m.Message.id)


class PlayerUseCases(EngineCore):
    async def join(
        self,
        channel_id: int,
        user_id: int,
        display_name: str,
        *,
        character: str | None = None,
        description: str = "",
    ) -> PlayerInfo:
        """Join with a suggested character (key or name) or a new one of your own."""
        # As the model will write it: "É" typed as E + a combining accent is the one-letter
        # "É", `ℌilda` is `Hilda`, and nothing invisible stays in it.
        name = clean_name(character or display_name)
        display_name = without_controls(display_name)  # (stored, and shown to the model)
        description = without_controls(description).strip()
        if not has_visible_text(name) or len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"A character name needs 1 to {MAX_NAME_CHARS} characters.")
        mixed = mixed_scripts(name)
        if mixed is not None:
            # A Cyrillic `а` in `Mirа` looks Latin: such a name could pass for another.
            word, scripts = mixed
            which = f"{', '.join(scripts[:-1])} and {scripts[-1]}"
            raise InvalidInput(
                f"{word} mixes {which} letters in one word; write each word of a name in one "
                "script."
            )
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidInput(
                f"Keep the description to at most {MAX_DESCRIPTION_CHARS} characters "
                f"(it has {len(description)})."
            )
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id)
            story = self.stories.get(
                pt.story_id, (await session.get_one(m.Story, pt.story_id)).data
            )
            current = await session.scalar(
                select(m.Player).where(
                    m.Player.playthrough_id == pt.id,
                    m.Player.user_id == user_id,
                    m.Player.left_at.is_(None),
                )
            )
            characters = {
                row.key: row
                for row in await session.scalars(
                    select(m.Character).where(m.Character.playthrough_id == pt.id)
                )
            }
            if current is not None:
                mine = next(c for c in characters.values() if c.id == current.character_id)
                raise InvalidInput(f"You are already playing {mine.name} in this story.")
            suggested = {pc.key: pc for pc in story.player_characters}
            same: m.Character | None = None  # someone's own character of this name
            # A name is also what looks like it: all-Cyrillic `Міга` is Mira. A suggested
            # character's name is that character, also as a display name joining without one.
            wanted = name_keys(name)
            key: str | None = next(
                (
                    k
                    for k, pc in suggested.items()
                    if not wanted.isdisjoint({k, *name_keys(pc.name)})
                ),
                None,
            )
            if key is not None:
                spec = suggested[key]
                taken_by = await session.scalar(
                    select(m.Player.display_name)
                    .join(m.Character, m.Character.id == m.Player.character_id)
                    .where(
                        m.Player.playthrough_id == pt.id,
                        m.Player.left_at.is_(None),
                        m.Character.key == key,
                    )
                )
                if taken_by is not None:
                    raise InvalidInput(f"{spec.name} is already played by {taken_by}.")
                if description and description != spec.description:
                    # The story wrote this character: a description would replace its own.
                    raise InvalidInput(
                        f"{spec.name} is one of the story's suggested characters and keeps its "
                        f"own description: join as {spec.name} without one, or give a character "
                        "of your own another name."
                    )
                name, description, appearance = spec.name, spec.description, spec.appearance
            else:
                # A name (or key) is one character's: the model's lines labelled with it must
                # go to that character alone.
                clashes = [
                    c
                    for c in characters.values()
                    if not wanted.isdisjoint({c.key, *name_keys(c.name)})
                ]
                for c in clashes:
                    if c.role != "player":
                        raise InvalidInput(
                            f"{c.name} is a character of the story; pick another name."
                        )
                for c in characters.values():
                    # The model calls Corvin Hale `Corvin`: a player's Corvin would take (and
                    # drop) his lines.
                    words = name_words(c.name)
                    if c.role != "player" and any(
                        not wanted.isdisjoint(name_keys(w)) for w in words
                    ):
                        raise InvalidInput(
                            f"{name} ({c.name}) is a character of the story; pick another name."
                        )
                if not wanted.isdisjoint(name_keys(NARRATOR)):
                    # Its posts would look like the story's own narration.
                    raise InvalidInput(f"{NARRATOR} is the story's own voice; pick another name.")
                if clashes:
                    played = (
                        await session.execute(
                            select(m.Player.character_id, m.Player.display_name).where(
                                m.Player.character_id.in_([c.id for c in clashes]),
                                m.Player.left_at.is_(None),
                            )
                        )
                    ).first()
                    if played is not None:
                        mine = next(c for c in clashes if c.id == played.character_id)
                        raise InvalidInput(
                            f"{mine.name} is already played by {played.display_name}."
                        )
                    # The one of this very name, if a lookalike was stored before lookalikes
                    # were refused.
                    exact = name_key(name)
                    same = next(
                        (c for c in clashes if exact in (c.key, name_key(c.name))), clashes[0]
                    )
                # Someone's own character that nobody plays now is taken up again, with its
                # relationships and knowledge.
                key = same.key if same is not None else _slug(name)
                appearance = ""
            scene = await session.scalar(select(m.Scene).where(m.Scene.playthrough_id == pt.id))
            row = characters.get(key)
            if (
                row is not None
                and row is not same
                and (row.role != "player" or key not in suggested)
            ):
                # The key is taken by a story character or someone's own character.
                suffix = 2
                while f"{key}_{suffix}" in characters:
                    suffix += 1
                key, row = f"{key}_{suffix}", None
            if row is None:
                row = m.Character(
                    playthrough_id=pt.id,
                    key=key,
                    name=name,
                    role="player",
                    appearance=appearance,
                    personality=description,
                    traits=[],
                    present=True,
                    location_id=scene.location_id if scene else None,
                )
                session.add(row)
                await session.flush()
                characters[key] = row
                session.add_all(relationship_rows(pt.id, story, characters, involving=key))
            else:
                row.present = True
                row.location_id = scene.location_id if scene else row.location_id
                if description:
                    row.personality = description
            session.add(
                m.Player(
                    playthrough_id=pt.id,
                    user_id=user_id,
                    display_name=display_name,
                    character_id=row.id,
                )
            )
            self._log_event(
                session,
                pt,
                "edit",
                f"{display_name} joined as {row.name}",
                {"user_id": user_id, "character": key},
            )
            info = PlayerInfo(user_id, display_name, key, row.name, row.personality)
        self.states.invalidate(pt.id)  # after the commit: a new character and player
        return info

    async def leave(self, channel_id: int, user_id: int) -> PlayerInfo:
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id)
            info = await self._active_player(session, pt.id, user_id)
            editor = self._editor(session, pt, actor="player", user_id=user_id)
            await editor.set("player", str(user_id), "left", "left the story")
            await editor.set("present", info.character_key, False, "their player left")
            await editor.save()
            self._log_event(session, pt, "edit", f"{info.display_name} left")
        self.states.invalidate(pt.id)
        return info

    async def remove_player(self, channel_id: int, user_id: int, moderator_id: int) -> PlayerInfo:
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id)
            info = await self._active_player(session, pt.id, user_id, yourself=False)
            editor = self._editor(session, pt, actor="moderator", user_id=moderator_id)
            await editor.set("player", str(user_id), "left", "removed by a moderator")
            await editor.set("present", info.character_key, False, "their player was removed")
            await editor.save()
            self._log_event(
                session,
                pt,
                "edit",
                f"moderator removed {info.display_name}",
                {"user_id": moderator_id, "removed": user_id},
            )
        self.states.invalidate(pt.id)
        return info

    async def players(self, channel_id: int) -> list[PlayerInfo]:
        async with self.db.read() as session:
            pt = await self._playthrough(session, channel_id)
            rows = await session.execute(
                select(m.Player, m.Character)
                .join(m.Character, m.Character.id == m.Player.character_id)
                .where(m.Player.playthrough_id == pt.id, m.Player.left_at.is_(None))
                .order_by(m.Player.id)
            )
            return [
                PlayerInfo(p.user_id, p.display_name, c.key, c.name, c.personality) for p, c in rows
            ]

    async def _active_player(
        self, session: AsyncSession, playthrough_id: int, user_id: int, *, yourself: bool = True
    ) -> PlayerInfo:
        found = (
            await session.execute(
                select(m.Player, m.Character)
                .join(m.Character, m.Character.id == m.Player.character_id)
                .where(
                    m.Player.playthrough_id == playthrough_id,
                    m.Player.user_id == user_id,
                    m.Player.left_at.is_(None),
                )
            )
        ).first()
        if found is None:
            if yourself:
                raise NotPlaying("You are not playing in this story; use /join first.")
            raise NotFound("That user is not playing in this story.")
        player, character = found
        return PlayerInfo(
            user_id, player.display_name, character.key, character.name, character.personality
        )

    async def submit_input(
        self,
        channel_id: int,
        user_id: int,
        text: str,
        *,
        action: bool = False,
        discord_message_id: int | None = None,
        queue: bool = True,
    ) -> InputReceipt:
        """Store a player's words (or an action) for the channel's next turn, then queue it.

        With `queue=False` the input only waits; `run_pending` later answers everything waiting
        at once (the terminal closes a turn on a blank line this way)."""
        text = without_controls(text).strip()
        if not has_visible_text(text):
            raise InvalidInput("There is nothing to say: the message is empty.")
        limit = self.options.max_input_chars
        if len(text) > limit:
            raise InvalidInput(
                f"That is {len(text)} characters; keep one input to at most {limit} and split "
                "the rest."
            )
        self.dispatcher.check_capacity(channel_id)
        if not self.collect_windows.knows(channel_id):
            await self._input_refused(channel_id, user_id)  # the first input: read the checks
        # One statement stores the input if the story runs and the user plays in it; only
        # when it stores nothing do the checks run, to say why.
        content = f"*{text}*" if action else text
        try:
            async with self.db.writing() as runner:
                params = {
                    "channel": channel_id,
                    "user": user_id,
                    "content": content,
                    "discord": discord_message_id,
                    "created": utcnow(),
                }
                (stored,) = await runner.finish([(_store_input, params)])  # with the commit
            message_id = stored[0][0] if stored else None
        except IntegrityError:
            # The same Discord message delivered again (gateway replay, restart): stored once.
            async with self.db.reading() as runner:
                seen = await scalar(runner, _message_by_discord_id, discord=discord_message_id)
            return InputReceipt(seen or 0, duplicate=True)
        if message_id is None:
            await self._input_refused(channel_id, user_id)
            # The checks pass now: the story or the player changed while it was stored.
            raise InvalidInput("The story changed just as you wrote; please send that again.")
        receipt = InputReceipt(message_id, duplicate=False)
        self.input_hints.stored(channel_id, message_id, content)
        if queue:
            self.dispatcher.signal_input(channel_id)
        return receipt

    async def _input_refused(self, channel_id: int, user_id: int) -> None:
        """Raise what stops this user's input in this channel, if anything (and note the
        server's collect window)."""
        async with self.db.reading() as runner:
            found = await first(runner, _input_checks, channel=channel_id, user=user_id)
            if found is None:
                raise NoPlaythrough()
            guild_id, status, character_id = found
            if not self.collect_windows.knows(channel_id):
                window = await scalar(runner, _collect_window, guild=guild_id)
                self.collect_windows.note(channel_id, guild_id, window)
        if status == "paused":
            raise StoryPaused()
        if character_id is None:
            raise NotPlaying("You are not playing in this story; use /join first.")

    def run_pending(self, channel_id: int) -> None:
        """Answer the channel's waiting input now, without a collect window."""
        self.dispatcher.resume(channel_id)

    async def wait_idle(self, channel_id: int | None = None) -> None:
        """Until the channel (or every channel) has no turn running or queued, nor a
        chapter of the story so far being written."""
        await self.dispatcher.wait_idle(channel_id)
        await self.chapters.wait(channel_id)
