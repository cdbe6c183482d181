"""The Discord bot: built by the entry point with the engine and its sink handed in."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from bot.discord_sink import DiscordSink
from bot.retry import RetryButton, retry_view
from bot.tree import DreamTree
from engine.facade import Engine
from engine.settings import Settings

log = logging.getLogger(__name__)
EXTENSIONS = ("bot.cogs.play", "bot.cogs.gm")


def bot_intents(message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = message_content
    return intents


class DreamwalkersBot(commands.AutoShardedBot):
    """Runs every shard of the bot, or those of `DISCORD_SHARDS` when several processes share
    a large bot (each channel belongs to one shard, so to one process: design §9)."""

    def __init__(
        self,
        engine: Engine,
        sink: DiscordSink,
        settings: Settings,
        *,
        message_content: bool = True,
        play: bool = True,
        **options: Any,
    ) -> None:
        """`play=False` only loads the commands (for `python -m bot sync`): no dev-guild sync,
        no recovery of waiting turns."""
        if settings.shard_ids is not None:
            options["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(message_content),
            tree_cls=DreamTree,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            shard_count=settings.discord_shard_count,
            **options,
        )
        self.engine = engine
        self.sink = sink
        self.settings = settings
        self.play = play
        sink.attach(self, retry_view, engine.guild_settings)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(RetryButton)  # Retry buttons of notices sent before a restart
        if not self.play:
            return
        if self.settings.dev_guild_id:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to the dev guild", len(synced))
        # Input that waited through a restart, and turns a crash cut off, are answered now.
        resumed = await self.engine.recover(self.owns_guild)
        if resumed:
            log.info("resuming %d channels", len(resumed))

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process runs the shard of `guild_id` (Discord's rule)."""
        shards, count = self.settings.shard_ids, self.settings.discord_shard_count
        return shards is None or count is None or (guild_id >> 22) % count in shards

    async def on_ready(self) -> None:
        log.info("logged in as %s in %d servers", self.user, len(self.guilds))
