"""The engine's output on Discord: characters speak through the channel's webhook with their
own name and avatar, the narrator as the bot; text is streamed by editing, at most about
once a second. Nothing sent here may ping anyone: every send and edit uses
`AllowedMentions.none()`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.utils import MISSING

from engine.results import Post, TurnResult
from engine.usecases.guilds import GuildSettings

log = logging.getLogger(__name__)
QUIET = discord.AllowedMentions.none()
LIMIT = 2000
EDIT_INTERVAL = 1.0
WEBHOOK_NAME = "Dreamwalkers"
# The end of a post still being written (en space + ellipsis). A final post never ends so, which
# lets a restarted bot find and delete the half posts of a turn a crash cut off.
STREAMING = "\u2002…"
TYPING_EVERY = 8.0
WEBHOOK_RECHECK = 300.0  # seconds before asking again for a webhook the bot was refused
KEEP_TURNS = 20  # per channel, the last turns whose messages go if the turn is taken back
SEND_WAIT = 15.0  # seconds a stopped turn waits for its posts' first sends, to delete them
SWEEP_LIMIT = 30  # recent messages searched for half posts at a channel's first turn


def _final(text: str) -> str:
    return text.replace(STREAMING, " …")


def split_message(text: str, limit: int = LIMIT) -> list[str]:
    """Pieces under `limit`, cut at a paragraph, else a sentence, else a space."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n\n")
        if cut < limit // 3:
            ends = [m.end() for m in re.finditer(r"[.!?…][\"')\]]*\s", window)]
            cut = ends[-1] if ends and ends[-1] >= limit // 3 else window.rfind(" ")
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


@dataclass
class _Live:
    """A post being streamed: its Discord message and the text so far."""

    post: Post
    text: str = ""
    message: discord.Message | discord.WebhookMessage | None = None
    prefix: str = ""  # "**Name:** " when the bot speaks for a character (no webhook)
    shown: str = ""
    last_edit: float = 0.0


@dataclass
class _Turn:
    posts: dict[int, _Live] = field(default_factory=dict)
    typing: asyncio.Task[None] | None = None
    # First sends of posts, shielded from the turn being stopped: Discord may have made the
    # message already, and it must be known to be deleted.
    sending: set[asyncio.Future[Any]] = field(default_factory=set)

    def stop_typing(self) -> None:
        if self.typing is not None:
            self.typing.cancel()
            self.typing = None


def _keep_message(live: _Live, turn: _Turn, sent: asyncio.Future[Any]) -> None:
    """Record a post's message when its first send completes, even if the turn was stopped
    while it was on its way."""
    turn.sending.discard(sent)
    if not sent.cancelled() and sent.exception() is None:
        live.message = sent.result()


async def _keep_typing(channel: Any) -> None:
    """Discord shows "typing" for about 10 s per request: renew it until the turn ends."""
    while True:
        with contextlib.suppress(discord.HTTPException):
            await channel.typing()
        await asyncio.sleep(TYPING_EVERY)


class DiscordSink:
    """Implements `engine.sink.OutputSink` for Discord."""

    def __init__(self) -> None:
        self.client: discord.Client | None = None
        self._turns: dict[int, _Turn] = {}
        self._webhooks: dict[int, discord.Webhook] = {}
        # channel -> when Manage Webhooks was found missing; asked again after WEBHOOK_RECHECK
        self._no_webhooks: dict[int, float] = {}
        self._told_no_webhooks: set[int] = set()  # channels told (once) why the bot speaks
        self._swept: set[int] = set()  # channels searched for half posts since start
        # channel -> turn number -> the messages that show it (posts and change line)
        self._shown: dict[int, dict[int, list[discord.Message]]] = {}
        self._retry_view: Callable[[int], discord.ui.View] | None = None
        self._settings: Callable[[int], Awaitable[GuildSettings]] | None = None

    def attach(
        self,
        client: discord.Client,
        retry_view: Callable[[int], discord.ui.View],
        settings: Callable[[int], Awaitable[GuildSettings]],
    ) -> None:
        """`settings(guild_id)`: a server's settings (the change line, the log channel)."""
        self.client = client
        self._retry_view = retry_view
        self._settings = settings

    # --- channels and webhooks -----------------------------------------------------------

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        assert self.client is not None
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException:
                log.warning("channel %s is gone", channel_id)
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def _webhook(self, channel: Any) -> discord.Webhook | None:
        """The channel's webhook (the parent's, for a thread), reused or created."""
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        if not isinstance(parent, discord.TextChannel):
            return None
        refused = self._no_webhooks.get(parent.id)
        if refused is not None and time.monotonic() - refused < WEBHOOK_RECHECK:
            return None
        cached = self._webhooks.get(parent.id)
        if cached is not None:
            return cached
        try:
            assert self.client is not None and self.client.user is not None
            mine = [
                w
                for w in await parent.webhooks()
                if w.user is not None and w.user.id == self.client.user.id and w.token
            ]
            hook = mine[0] if mine else await parent.create_webhook(name=WEBHOOK_NAME)
        except discord.Forbidden:
            self._no_webhooks[parent.id] = time.monotonic()
            if parent.id not in self._told_no_webhooks:
                self._told_no_webhooks.add(parent.id)
                await channel.send(
                    "I lack the Manage Webhooks permission here, so characters will speak "
                    "through me with their names in bold. Give me that permission to let each "
                    "character speak with its own name and picture.",
                    allowed_mentions=QUIET,
                )
            return None
        self._no_webhooks.pop(parent.id, None)
        self._webhooks[parent.id] = hook
        return hook

    async def _send(self, channel: Any, post: Post, text: str) -> discord.Message:
        """Send one piece of a post as its speaker; the narrator speaks as the bot."""
        if post.character_key is not None:
            for _ in range(2):
                hook = await self._webhook(channel)
                if hook is None:
                    return await channel.send(f"**{post.speaker}:** {text}", allowed_mentions=QUIET)  # type: ignore[no-any-return]
                kwargs: dict[str, Any] = {
                    "username": post.speaker[:80],
                    "allowed_mentions": QUIET,
                    "wait": True,
                }
                if post.avatar_url:
                    kwargs["avatar_url"] = post.avatar_url
                if isinstance(channel, discord.Thread):
                    kwargs["thread"] = channel
                try:
                    return await hook.send(text, **kwargs)  # type: ignore[no-any-return]
                except discord.NotFound:
                    # Someone deleted the webhook mid-story: make a new one and try again.
                    parent = channel.parent if isinstance(channel, discord.Thread) else channel
                    if parent is not None:
                        self._webhooks.pop(parent.id, None)
                except discord.HTTPException as error:
                    if error.status != 400:
                        raise
                    # Discord refuses some names ("Clyde", "Discord"...): the post still goes.
                    log.warning("webhook post as %r refused: %s", post.speaker, error.text)
                    break
            return await channel.send(f"**{post.speaker}:** {text}", allowed_mentions=QUIET)  # type: ignore[no-any-return]
        return await channel.send(text, allowed_mentions=QUIET)  # type: ignore[no-any-return]

    async def _edit(self, live: _Live, text: str) -> bool:
        """Show `text` in the post's message; False if the message can no longer be edited
        (deleted, or its webhook was)."""
        text = live.prefix + text
        if live.message is None or text == live.shown:
            return True
        try:
            await live.message.edit(content=text, allowed_mentions=QUIET)
            live.shown = text
            return True
        except discord.HTTPException as error:
            log.warning("could not edit a streamed post: %s", error)
            return not isinstance(error, discord.NotFound)

    async def _orphan(self, channel: Any, live: _Live) -> None:
        """A post's message can no longer be edited (its webhook was deleted): try to delete it
        (needs Manage Messages) and forget it."""
        if live.message is not None:
            with contextlib.suppress(discord.HTTPException):
                await channel.get_partial_message(live.message.id).delete()
        live.message, live.prefix, live.shown = None, "", ""

    async def _guild_settings(self, channel: Any) -> GuildSettings | None:
        guild = getattr(channel, "guild", None)
        if guild is None or self._settings is None:
            return None
        try:
            return await self._settings(guild.id)
        except Exception:
            log.warning("could not read the settings of server %s", guild.id, exc_info=True)
            return None

    async def _log(self, settings: GuildSettings | None, channel_id: int, text: str) -> None:
        """A line for the server's log channel, when one is set (and is not the story's)."""
        if settings is None or settings.log_channel_id in (None, channel_id):
            return
        assert settings.log_channel_id is not None
        target = await self._channel(settings.log_channel_id)
        if target is None:
            return
        with contextlib.suppress(discord.HTTPException):
            for piece in split_message(f"<#{channel_id}> {text}"):
                await target.send(piece, allowed_mentions=QUIET)

    def close(self) -> None:
        """Stop the typing indicators of turns cut off by a shutdown."""
        for turn in self._turns.values():
            turn.stop_typing()

    async def narrate(self, channel_id: int, text: str) -> None:
        """Text from the narrator outside a turn (a story's opening)."""
        channel = await self._channel(channel_id)
        if channel is not None:
            for piece in split_message(text):
                await channel.send(piece, allowed_mentions=QUIET)

    # --- OutputSink ----------------------------------------------------------------------

    async def _discard(self, turn: _Turn | None) -> None:
        """Delete the half posts of a turn that will not finish (it failed or was cut off)."""
        if turn is not None:
            turn.stop_typing()
            if turn.sending:  # posts Discord may be creating right now
                await asyncio.wait(turn.sending, timeout=SEND_WAIT)
        for live in turn.posts.values() if turn else ():
            if live.message is not None:
                with contextlib.suppress(discord.HTTPException):
                    await live.message.delete()

    async def _sweep(self, channel: Any) -> None:
        """At a channel's first turn since start: delete half posts left by a crash (the turn
        they belonged to is run again)."""
        if channel.id in self._swept or self.client is None or self.client.user is None:
            return
        self._swept.add(channel.id)
        me = self.client.user.id
        try:
            async for message in channel.history(limit=SWEEP_LIMIT):
                if not message.content.endswith(STREAMING):
                    continue
                if message.webhook_id is None and message.author.id == me:
                    await message.delete()
                elif message.webhook_id is not None:
                    hook = await self._webhook(channel)
                    if hook is not None and hook.id == message.webhook_id:
                        thread = channel if isinstance(channel, discord.Thread) else MISSING
                        await hook.delete_message(message.id, thread=thread)
        except discord.HTTPException:
            log.warning("could not clear half posts in channel %s", channel.id, exc_info=True)

    async def taken_back(self, channel_id: int, from_number: int) -> None:
        """Turns from `from_number` on were undone or are written again: their messages go,
        so the channel shows the story as it stands (for turns shown since this start)."""
        shown = self._shown.get(channel_id, {})
        for number in sorted(n for n in shown if n >= from_number):
            for message in shown.pop(number):
                with contextlib.suppress(discord.HTTPException):
                    await message.delete()

    async def turn_started(self, channel_id: int, turn_number: int) -> None:
        await self._discard(self._turns.pop(channel_id, None))
        await self.taken_back(channel_id, turn_number)  # a retry replaces that turn
        turn = self._turns[channel_id] = _Turn()
        channel = await self._channel(channel_id)
        if channel is not None:
            await self._sweep(channel)
            turn.typing = asyncio.create_task(_keep_typing(channel))

    async def post_started(self, channel_id: int, index: int, post: Post) -> None:
        self._turns.setdefault(channel_id, _Turn()).posts[index] = _Live(post)

    async def text_streamed(self, channel_id: int, index: int, delta: str) -> None:
        turn = self._turns.get(channel_id)
        live = turn.posts.get(index) if turn else None
        if live is None:
            return
        live.text += delta
        now = time.monotonic()
        shown = _final(live.text[: LIMIT - len(STREAMING) - 100]) + STREAMING
        channel = await self._channel(channel_id)
        if channel is None:
            return
        if live.message is None:
            assert turn is not None
            sent = asyncio.ensure_future(self._send(channel, live.post, shown))
            turn.sending.add(sent)
            sent.add_done_callback(functools.partial(_keep_message, live, turn))
            live.message = await asyncio.shield(sent)
            if live.post.character_key and not isinstance(live.message, discord.WebhookMessage):
                live.prefix = f"**{live.post.speaker}:** "
            live.shown, live.last_edit = live.prefix + shown, now
        elif now - live.last_edit >= EDIT_INTERVAL:
            live.last_edit = now
            if not await self._edit(live, shown):
                await self._orphan(channel, live)  # the next text starts a new message

    async def turn_finished(self, channel_id: int, result: TurnResult) -> None:
        turn = self._turns.pop(channel_id, _Turn())
        turn.stop_typing()
        channel = await self._channel(channel_id)
        if channel is None:
            return
        sent: list[discord.Message] = []
        for index, post in enumerate(result.posts):
            pieces = split_message(_final(post.text)) or ["…"]
            live = turn.posts.get(index)
            if live is not None and live.message is not None and await self._edit(live, pieces[0]):
                sent.append(live.message)
                rest = pieces[1:]
            else:  # never shown, or its message is gone: send the whole post
                if live is not None:
                    await self._orphan(channel, live)
                rest = pieces
            for piece in rest:
                sent.append(await self._send(channel, post, piece))
        settings = await self._guild_settings(channel)
        if result.changes:
            lines = [f"~ {change.describe()}" for change in result.changes[:15]]
            if settings is None or settings.show_changes:
                for piece in split_message("-# " + "\n-# ".join(lines)):
                    sent.append(await channel.send(piece, allowed_mentions=QUIET))
            await self._log(settings, channel_id, f"turn {result.turn_number}\n" + "\n".join(lines))
        shown = self._shown.setdefault(channel_id, {})
        shown[result.turn_number] = sent
        for old in sorted(shown)[:-KEEP_TURNS]:
            del shown[old]

    async def notice(self, channel_id: int, text: str, *, retryable: bool = False) -> None:
        await self._discard(self._turns.pop(channel_id, None))
        channel = await self._channel(channel_id)
        if channel is None:
            return
        if retryable:  # a failed turn: the moderators' log channel hears of it too
            await self._log(await self._guild_settings(channel), channel_id, text)
        view = self._retry_view(channel_id) if retryable and self._retry_view else None
        if retryable:
            text += (
                " Press Retry or use /retry to try again." if view else " Use /retry to try again."
            )
        if view is not None:
            await channel.send(text[:LIMIT], view=view, allowed_mentions=QUIET)
        else:
            await channel.send(text[:LIMIT], allowed_mentions=QUIET)
