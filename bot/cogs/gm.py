"""Moderators' commands, `/gm ...`. Every one is checked on the server side (Manage Server or
the GM role) before it runs; Discord's own permission display is not trusted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.permissions import require_moderator
from engine.results import ChangeView, FlagValue

if TYPE_CHECKING:
    from bot.app import DreamwalkersBot

QUIET = discord.AllowedMentions.none()
# /gm config reset: option name -> setting
RESETTABLE = {
    "model": "model",
    "gm_role": "gm_role_id",
    "collect_window": "collect_window_seconds",
    "log_channel": "log_channel_id",
}


def parse_flag_value(text: str) -> FlagValue:
    """`true`/`false`, a number, or text."""
    lowered = text.strip().casefold()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def describe(changes: list[ChangeView]) -> str:
    if not changes:
        return "Nothing changed."
    return "\n".join(f"~ {c.describe()}" for c in changes)[:1900]


class GameMaster(commands.GroupCog, group_name="gm"):
    """Moderator tools for the story in this channel."""

    flag = app_commands.Group(name="flag", description="Story flags")
    relationship = app_commands.Group(name="relationship", description="Relationships")
    scene = app_commands.Group(name="scene", description="The scene")
    character = app_commands.Group(name="character", description="Characters in the scene")
    player = app_commands.Group(name="player", description="Players")
    arc = app_commands.Group(name="arc", description="Arcs and episodes")

    def __init__(self, bot: DreamwalkersBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await require_moderator(interaction, self.bot.engine)
        return True

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.bot.engine

    @staticmethod
    def _ids(interaction: discord.Interaction) -> tuple[int, int]:
        assert interaction.channel is not None
        return interaction.channel.id, interaction.user.id

    async def _changed(self, interaction: discord.Interaction, changes: list[ChangeView]) -> None:
        await interaction.response.send_message(
            describe(changes), ephemeral=True, allowed_mentions=QUIET
        )

    @flag.command(name="set")
    @app_commands.describe(name="Flag name (snake_case)", value="true, false, a number or text")
    async def flag_set(self, interaction: discord.Interaction, name: str, value: str) -> None:
        """Set a story flag."""
        channel, user = self._ids(interaction)
        changes = await self.engine.set_flag(channel, user, name, parse_flag_value(value))
        await self._changed(interaction, changes)

    @flag.command(name="unset")
    async def flag_unset(self, interaction: discord.Interaction, name: str) -> None:
        """Remove a story flag."""
        channel, user = self._ids(interaction)
        await self._changed(interaction, await self.engine.unset_flag(channel, user, name))

    @flag.command(name="list")
    async def flag_list(self, interaction: discord.Interaction) -> None:
        """List the story's flags."""
        channel, _ = self._ids(interaction)
        flags = await self.engine.flags(channel)
        text = "\n".join(discord.utils.escape_markdown(f.describe()) for f in flags)
        await interaction.response.send_message(
            text[:2000] or "No flags.", ephemeral=True, allowed_mentions=QUIET
        )

    @relationship.command(name="set")
    async def relationship_set(
        self,
        interaction: discord.Interaction,
        source: str,
        target: str,
        trust: app_commands.Range[float, -1.0, 1.0] | None = None,
        affection: app_commands.Range[float, -1.0, 1.0] | None = None,
        familiarity: app_commands.Range[float, 0.0, 1.0] | None = None,
    ) -> None:
        """Set how one character feels about another."""
        channel, user = self._ids(interaction)
        changes = await self.engine.set_relationship(
            channel,
            user,
            source,
            target,
            trust=trust,
            affection=affection,
            familiarity=familiarity,
        )
        await self._changed(interaction, changes)

    @scene.command(name="set")
    async def scene_set(
        self,
        interaction: discord.Interaction,
        location: str | None = None,
        time_of_day: app_commands.Range[str, 1, 100] | None = None,
        weather: app_commands.Range[str, 1, 100] | None = None,
        tone: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """Change the place, time, weather or tone of the scene."""
        channel, user = self._ids(interaction)
        changes = await self.engine.set_scene(
            channel, user, location=location, time_of_day=time_of_day, weather=weather, tone=tone
        )
        await self._changed(interaction, changes)

    @character.command(name="enter")
    async def character_enter(self, interaction: discord.Interaction, name: str) -> None:
        """Bring a character into the scene."""
        channel, user = self._ids(interaction)
        await self._changed(interaction, await self.engine.character_enter(channel, user, name))

    @character.command(name="leave")
    async def character_leave(self, interaction: discord.Interaction, name: str) -> None:
        """Take a character out of the scene."""
        channel, user = self._ids(interaction)
        await self._changed(interaction, await self.engine.character_leave(channel, user, name))

    @player.command(name="remove")
    async def player_remove(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Remove a player from the story."""
        channel, user = self._ids(interaction)
        info = await self.engine.remove_player(channel, member.id, user)
        await interaction.response.send_message(
            f"{info.display_name} no longer plays {info.character_name}.", allowed_mentions=QUIET
        )

    @arc.command(name="status")
    async def arc_status(self, interaction: discord.Interaction) -> None:
        """Where the story's arcs and episodes stand."""
        channel, _ = self._ids(interaction)
        lines = []
        for arc in await self.engine.arcs(channel):
            lines.append(f"**{arc.title}** (`{arc.key}`): {arc.status}")
            lines += [f"  • {e.title} (`{e.key}`): {e.status}" for e in arc.episodes]
        await interaction.response.send_message(
            "\n".join(lines)[:2000] or "This story has no arcs.", ephemeral=True
        )

    @arc.command(name="advance")
    @app_commands.describe(arc="Arc key or title", episode="Episode key or title to complete")
    async def arc_advance(self, interaction: discord.Interaction, arc: str, episode: str) -> None:
        """Complete an episode and set its flags; what follows opens as the story says."""
        channel, user = self._ids(interaction)
        await self._changed(
            interaction, await self.engine.complete_episode(channel, user, arc, episode)
        )

    @arc.command(name="reopen")
    @app_commands.describe(arc="Arc key or title", episode="Episode key or title to reopen")
    async def arc_reopen(self, interaction: discord.Interaction, arc: str, episode: str) -> None:
        """Make an episode active again; later episodes lock unless the story opens them."""
        channel, user = self._ids(interaction)
        await self._changed(
            interaction, await self.engine.reopen_episode(channel, user, arc, episode)
        )

    @app_commands.command()
    async def pause(self, interaction: discord.Interaction) -> None:
        """Pause the story: plain messages and /say are not answered until it resumes."""
        channel, user = self._ids(interaction)
        await self.engine.pause(channel, user)
        await interaction.response.send_message("The story is paused.", allowed_mentions=QUIET)

    @app_commands.command()
    async def resume(self, interaction: discord.Interaction) -> None:
        """Resume a paused story."""
        channel, user = self._ids(interaction)
        await self.engine.resume(channel, user)
        await interaction.response.send_message("The story goes on.", allowed_mentions=QUIET)

    @app_commands.command()
    async def log(self, interaction: discord.Interaction) -> None:
        """Recent decisions, clamps and errors."""
        channel, _ = self._ids(interaction)
        events = await self.engine.event_log(channel, limit=15)
        lines = [
            f"[{e.kind}]"
            + (f" turn {e.turn_number}" if e.turn_number else "")
            + f" {discord.utils.escape_markdown(e.summary)}"
            + (f" (by <@{e.user_id}>)" if e.user_id else "")  # shown as a name, never a ping
            for e in events
        ]
        await interaction.response.send_message(
            "\n".join(lines)[:2000] or "Nothing logged yet.",
            ephemeral=True,
            allowed_mentions=QUIET,
        )

    @app_commands.command()
    @app_commands.describe(
        model="LLM model for this server",
        gm_role="Role whose members may use /gm",
        collect_window="Seconds to wait for other players before answering",
        show_changes="Show relationship and flag changes after each turn",
        log_channel="Channel where moderators see each turn's changes and failed turns",
        reset="Put one setting back to its default",
    )
    async def config(
        self,
        interaction: discord.Interaction,
        model: app_commands.Range[str, 1, 200] | None = None,
        gm_role: discord.Role | None = None,
        collect_window: app_commands.Range[float, 0.0, 30.0] | None = None,
        show_changes: bool | None = None,
        log_channel: discord.TextChannel | None = None,
        reset: Literal["model", "gm_role", "collect_window", "log_channel"] | None = None,
    ) -> None:
        """Show or change this server's settings."""
        assert interaction.guild is not None
        changes: dict[str, object] = {}
        if model is not None:
            changes["model"] = model
        if gm_role is not None:
            changes["gm_role_id"] = gm_role.id
        if collect_window is not None:
            changes["collect_window_seconds"] = collect_window
        if show_changes is not None:
            changes["show_changes"] = show_changes
        if log_channel is not None:
            changes["log_channel_id"] = log_channel.id
        if reset is not None:
            changes[RESETTABLE[reset]] = None
        if changes:
            settings = await self.engine.update_guild_settings(
                interaction.guild.id, interaction.user.id, **changes
            )
        else:
            settings = await self.engine.guild_settings(interaction.guild.id)
        role = f"<@&{settings.gm_role_id}>" if settings.gm_role_id else "none"
        logs = f"<#{settings.log_channel_id}>" if settings.log_channel_id else "none"
        await interaction.response.send_message(
            f"Model: {settings.model or 'default'}\nGM role: {role}\n"
            f"Collect window: {settings.collect_window_seconds or 'default'} s\n"
            f"Show changes: {'yes' if settings.show_changes else 'no'}\nLog channel: {logs}",
            ephemeral=True,
            allowed_mentions=QUIET,
        )


async def setup(bot: DreamwalkersBot) -> None:
    await bot.add_cog(GameMaster(bot))
