"""Who is a moderator: Manage Server, or the server's configured GM role. Checked on the
server side for every moderator command, whatever Discord shows or hides."""

from __future__ import annotations

import discord
from discord import app_commands

from engine.facade import Engine


class NotModerator(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__(
            "Only moderators can do that: you need Manage Server or the server's GM role."
        )


async def is_moderator(interaction: discord.Interaction, engine: Engine) -> bool:
    member = interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        return False
    if interaction.permissions.manage_guild or member.guild_permissions.manage_guild:
        return True
    settings = await engine.guild_settings(interaction.guild.id)
    return settings.gm_role_id is not None and any(
        role.id == settings.gm_role_id for role in member.roles
    )


async def require_moderator(interaction: discord.Interaction, engine: Engine) -> None:
    if not await is_moderator(interaction, engine):
        raise NotModerator()
