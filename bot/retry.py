"""The Retry button under a failed turn's notice. Its custom id carries the channel, so it is a
`DynamicItem`: registered once in `setup_hook`, it still works after the bot restarts."""

from __future__ import annotations

import re
from typing import Any

import discord

from engine.errors import EngineError, NoFailedTurn

QUIET = discord.AllowedMentions.none()


class RetryButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dreamwalkers:retry:(?P<channel_id>[0-9]+)",
):
    def __init__(self, channel_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Retry",
                style=discord.ButtonStyle.primary,
                custom_id=f"dreamwalkers:retry:{channel_id}",
            )
        )
        self.channel_id = channel_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RetryButton:
        return cls(int(match["channel_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the failed turn again. The button goes at once (no double retries) and comes
        back if the retry is refused."""
        engine = interaction.client.engine  # type: ignore[attr-defined]
        await interaction.response.edit_message(view=None, allowed_mentions=QUIET)
        try:
            await engine.retry(self.channel_id, interaction.user.id, failed_only=True)
        except EngineError as error:
            if not isinstance(error, NoFailedTurn):  # (else the button has had its day)
                await interaction.edit_original_response(view=retry_view(self.channel_id))
            await interaction.followup.send(str(error), ephemeral=True, allowed_mentions=QUIET)


def retry_view(channel_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(channel_id))
    return view
