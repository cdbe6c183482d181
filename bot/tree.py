"""The command tree: one place where errors of every slash command become replies."""

from __future__ import annotations

import contextlib
import logging

import discord
from discord import app_commands

from bot.answers import DEFERRED_PUBLICLY
from engine.errors import EngineError

log = logging.getLogger(__name__)
GENERIC_ERROR = "Something went wrong on my side; the moderators can find it in the log."


async def reply_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, whether or not the interaction was answered or deferred before."""
    quiet = discord.AllowedMentions.none()
    if interaction.response.is_done():
        if interaction.extras.pop(DEFERRED_PUBLICLY, False):
            # The first followup would replace the public "thinking…" and show to everyone:
            # remove that message, so the followup is a new, private one.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=quiet)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=quiet)


class DreamTree(app_commands.CommandTree):
    """User mistakes (EngineError) are shown as they are; anything else is logged with its
    trace and answered with a short generic message."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, EngineError):
            text = str(original)
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You cannot use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("command /%s failed", command, exc_info=original)
            text = GENERIC_ERROR
        try:
            await reply_privately(interaction, text)
        except discord.HTTPException:
            log.warning("could not tell the user about an error", exc_info=True)
