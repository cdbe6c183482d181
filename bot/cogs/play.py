"""Players' commands, plain-message play, and the story list. Each command checks its input,
makes one engine call and renders the result; errors are the tree's business."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import answer, in_time
from bot.chat import OUT_OF_CHARACTER
from bot.permissions import require_moderator
from bot.render import recap_message, scene_embed
from engine.dispatcher import QueueFull
from engine.errors import EngineError

if TYPE_CHECKING:
    from bot.app import DreamwalkersBot

log = logging.getLogger(__name__)
QUIET = discord.AllowedMentions.none()
ACK = "🪶"


class Stories(commands.GroupCog, group_name="story"):
    """Start, end and list stories."""

    def __init__(self, bot: DreamwalkersBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="list")
    async def list_stories(self, interaction: discord.Interaction) -> None:
        """List the stories this bot can run."""
        stories = self.bot.engine.list_stories()
        if not stories:
            await interaction.response.send_message("No stories are installed.", ephemeral=True)
            return
        embed = discord.Embed(title="Stories")
        for s in stories[:25]:
            embed.add_field(
                name=f"{s.title} (`{s.key}`)",
                value=(s.summary or "No summary.")[:1000],
                inline=False,
            )
        await interaction.response.send_message(embed=embed, allowed_mentions=QUIET)

    @app_commands.command(name="start")
    @app_commands.describe(story="Which story to start")
    async def start(self, interaction: discord.Interaction, story: str) -> None:
        """Start a story in this channel (moderators)."""
        await require_moderator(interaction, self.bot.engine)
        assert interaction.guild is not None and interaction.channel is not None
        info = await in_time(  # copying a story can take a moment
            interaction,
            self.bot.engine.start(
                interaction.guild.id, interaction.channel.id, story, interaction.user.id
            ),
        )
        await answer(interaction, f"**{info.story_title}** begins. Join with `/join`.")
        if info.opening:
            await self.bot.sink.narrate(interaction.channel.id, info.opening)

    @start.autocomplete("story")
    async def story_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = current.casefold()
        return [
            app_commands.Choice(name=s.title[:100], value=s.key)
            for s in self.bot.engine.list_stories()
            if wanted in s.title.casefold() or wanted in s.key
        ][:25]

    @app_commands.command(name="end")
    async def end(self, interaction: discord.Interaction) -> None:
        """End the story in this channel (moderators)."""
        await require_moderator(interaction, self.bot.engine)
        assert interaction.channel is not None
        info = await in_time(
            interaction, self.bot.engine.end(interaction.channel.id, interaction.user.id)
        )
        await answer(
            interaction, f"**{info.story_title}** has ended after {info.turn_count} turns."
        )


class Play(commands.Cog):
    """Players' commands and plain-message play."""

    def __init__(self, bot: DreamwalkersBot) -> None:
        self.bot = bot
        self._told_no_content: set[int] = set()

    def _channel_id(self, interaction: discord.Interaction) -> int:
        assert interaction.channel is not None
        return interaction.channel.id

    @app_commands.command()
    @app_commands.describe(
        character="A suggested character of the story",
        name="Or a name for a character of your own",
        description="A short description of your own character",
    )
    async def join(
        self,
        interaction: discord.Interaction,
        character: str | None = None,
        name: app_commands.Range[str, 1, 40] | None = None,
        description: app_commands.Range[str, 0, 300] = "",
    ) -> None:
        """Join the story in this channel with a character."""
        player = await in_time(
            interaction,
            self.bot.engine.join(
                self._channel_id(interaction),
                interaction.user.id,
                interaction.user.display_name,
                character=name or character,
                description=description,
            ),
        )
        await answer(
            interaction, f"{interaction.user.display_name} joins as **{player.character_name}**."
        )

    @join.autocomplete("character")
    async def character_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The story's suggested characters nobody plays yet."""
        channel_id = self._channel_id(interaction)
        try:
            info = await self.bot.engine.playthrough(channel_id)
            taken = {p.character_key for p in await self.bot.engine.players(channel_id)}
        except EngineError:
            return []
        wanted = current.casefold()
        return [
            app_commands.Choice(name=s.name[:100], value=s.key)
            for s in self.bot.engine.story(info.story_key).suggested_characters
            if wanted in s.name.casefold() and s.key not in taken
        ][:25]

    @app_commands.command()
    async def leave(self, interaction: discord.Interaction) -> None:
        """Leave the story in this channel."""
        player = await self.bot.engine.leave(self._channel_id(interaction), interaction.user.id)
        await interaction.response.send_message(
            f"**{player.character_name}** leaves the story.", allowed_mentions=QUIET
        )

    async def _input(self, interaction: discord.Interaction, text: str, action: bool) -> None:
        await self.bot.engine.submit_input(
            self._channel_id(interaction), interaction.user.id, text, action=action
        )
        shown = f"*{text}*" if action else text
        await interaction.response.send_message(
            f"**{interaction.user.display_name}:** {shown}"[:2000], allowed_mentions=QUIET
        )

    @app_commands.command()
    @app_commands.describe(text="What your character says")
    async def say(
        self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 2000]
    ) -> None:
        """Say something in character."""
        await self._input(interaction, text, action=False)

    @app_commands.command(name="do")
    @app_commands.describe(action="What your character does")
    async def do(
        self, interaction: discord.Interaction, action: app_commands.Range[str, 1, 2000]
    ) -> None:
        """Do something in character."""
        await self._input(interaction, action, action=True)

    @app_commands.command()
    async def look(self, interaction: discord.Interaction) -> None:
        """Look around: the place, the time, the weather and who is here."""
        scene = await self.bot.engine.scene(self._channel_id(interaction))
        await interaction.response.send_message(embed=scene_embed(scene), allowed_mentions=QUIET)

    @app_commands.command()
    async def characters(self, interaction: discord.Interaction) -> None:
        """The story's characters and where they are."""
        rows = await self.bot.engine.characters(self._channel_id(interaction))
        lines = [
            f"**{c.name}** ({'player' if c.player_user_id else c.role}) — "
            f"{'here' if c.present else c.location or 'away'}" + (f", {c.mood}" if c.mood else "")
            for c in rows
        ]
        await interaction.response.send_message(
            "\n".join(lines)[:2000] or "No characters.", ephemeral=True, allowed_mentions=QUIET
        )

    @app_commands.command()
    @app_commands.describe(character="Only this character's relationships")
    async def relationships(
        self, interaction: discord.Interaction, character: str | None = None
    ) -> None:
        """How the characters feel about each other."""
        rows = await self.bot.engine.relationships(self._channel_id(interaction), character)
        lines = [r.describe("→") for r in rows]
        await interaction.response.send_message(
            "\n".join(lines)[:2000] or "No relationships yet.",
            ephemeral=True,
            allowed_mentions=QUIET,
        )

    @app_commands.command()
    async def recap(self, interaction: discord.Interaction) -> None:
        """What has happened so far."""
        recap = await self.bot.engine.recap(self._channel_id(interaction))
        await interaction.response.send_message(
            recap_message(recap), ephemeral=True, allowed_mentions=QUIET
        )

    @app_commands.command()
    async def retry(self, interaction: discord.Interaction) -> None:
        """Write the last turn again."""
        channel_id = self._channel_id(interaction)
        retried = await in_time(
            interaction, self.bot.engine.retry(channel_id, interaction.user.id), ephemeral=True
        )
        if retried.turn is None:
            text = f"Turn {retried.turn_number} could not be written; the channel was told why."
        else:
            done = "written again" if retried.rewritten else "written"
            text = f"Turn {retried.turn_number} {done}."
        await answer(interaction, text, ephemeral=True)

    @app_commands.command()
    async def undo(self, interaction: discord.Interaction) -> None:
        """Take back the last turn."""
        channel_id = self._channel_id(interaction)
        number = await in_time(interaction, self.bot.engine.undo(channel_id, interaction.user.id))
        await self.bot.sink.taken_back(channel_id, number)
        await answer(interaction, f"Turn {number} was taken back.")

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Plain messages in a channel with a story are player input."""
        if message.author.bot or message.webhook_id is not None or message.guild is None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if not message.content.strip():
            if not message.attachments and not message.embeds:
                await self._explain_missing_content(message)
            return
        if OUT_OF_CHARACTER.match(message.content):
            return
        try:
            await self.bot.engine.submit_input(
                message.channel.id,
                message.author.id,
                message.content,
                discord_message_id=message.id,
            )
        except QueueFull as error:
            await message.reply(str(error), allowed_mentions=QUIET)
            return
        except EngineError:
            return  # not a story channel, or not a player: plain chat is left alone
        with contextlib.suppress(discord.HTTPException):
            await message.add_reaction(ACK)

    async def _explain_missing_content(self, message: discord.Message) -> None:
        """Without the Message Content intent every message arrives empty: say so once."""
        channel_id = message.channel.id
        if channel_id in self._told_no_content or self.bot.intents.message_content:
            return
        self._told_no_content.add(channel_id)  # before any await: two messages, one notice
        try:
            await self.bot.engine.playthrough(channel_id)
        except EngineError:
            self._told_no_content.discard(channel_id)
            return
        await message.channel.send(
            "I cannot read plain messages here: enable the Message Content intent for this "
            "bot in the Discord developer portal. Until then, play with `/say` and `/do`.",
            allowed_mentions=QUIET,
        )


async def setup(bot: DreamwalkersBot) -> None:
    await bot.add_cog(Stories(bot))
    await bot.add_cog(Play(bot))
