"""The Discord double, exercised by the real discord.py client (a minimal bot defined here)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import discord
import pytest
from discord import app_commands

from tests.discord_double import Channel, DiscordDouble, Guild, Perm, User

TIMEOUT = 5.0


class MiniBot(discord.Client):
    """A small bot: slash commands, a webhook command, and a log of what it received."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(intents=intents, guild_ready_timeout=0.2)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []
        self.resumed = asyncio.Event()
        self._got_message = asyncio.Event()
        self._register()

    def _register(self) -> None:
        @self.tree.command(description="Say hello")
        async def hello(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"Hello, {name}!")

        @self.tree.command(description="Think, then answer")
        async def ponder(interaction: discord.Interaction, question: str) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0.05)
            await interaction.followup.send(f"After thought: {question}")

        @self.tree.command(description="Moderators only")
        async def purge(interaction: discord.Interaction) -> None:
            if not interaction.permissions.manage_messages:
                await interaction.response.send_message("You may not.", ephemeral=True)
                return
            await interaction.response.send_message("Purged.")

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)
        self._got_message.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def next_message(self, predicate: object = None) -> discord.Message:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for m in self.seen:
                    if predicate is None or predicate(m):  # type: ignore[operator]
                        return m
                self._got_message.clear()
                await self._got_message.wait()


@dataclass
class Scene:
    guild: Guild
    channel: Channel
    alice: User
    mod: User
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture
def scene(discord_double: DiscordDouble) -> Scene:
    guild = discord_double.create_guild("Dream Guild")
    channel = discord_double.create_channel(guild, "story", topic="Once upon a time")
    discord_double.create_channel(guild, "ooc")
    alice = discord_double.create_user("alice", global_name="Alice")
    mod = discord_double.create_user("morgan", global_name="Morgan")
    moderators = discord_double.create_role(guild, "GM", Perm.MANAGE_MESSAGES)
    discord_double.add_member(guild, alice)
    discord_double.add_member(guild, mod, roles=[moderators], nick="Morgan the GM")
    return Scene(guild, channel, alice, mod)


async def test_login_and_ready_shows_guild_and_channels(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        guild = bot.get_guild(scene.guild.id)
        assert guild is not None and guild.name == "Dream Guild"
        assert sorted(c.name for c in guild.text_channels) == ["ooc", "story"]
        assert bot.user is not None and bot.user.name == "Dreamwalkers"
        assert guild.me.guild_permissions.manage_webhooks
        assert discord_double.gateway.intents == bot.intents.value


async def test_user_message_reaches_bot_and_bot_replies(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await discord_double.user_sends(scene.alice, scene.channel, "I open the door.")
        received = await bot.next_message()
        assert received.content == "I open the door."
        assert received.author.id == scene.alice.id
        await received.channel.send("The door creaks.")
        shown = await discord_double.wait_for_message(lambda m: m.content == "The door creaks.")
        assert shown.author_name == "Dreamwalkers"
