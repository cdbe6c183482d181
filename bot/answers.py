"""Answering a slash command within Discord's 3 s without making a user error public.

Deferring first would make every answer, errors included, take the deferral's visibility:
after a public "thinking..." the tree's ephemeral error reply would show to everyone. So the
engine call gets `DEFER_AFTER` seconds to finish; only a slower call is deferred, and if it
then fails, the tree deletes the public "thinking..." before answering privately."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import discord

T = TypeVar("T")
DEFER_AFTER = 2.0  # Discord wants the first answer within 3 s
DEFERRED_PUBLICLY = "deferred_publicly"  # key in `interaction.extras`
QUIET = discord.AllowedMentions.none()


async def in_time(
    interaction: discord.Interaction, work: Awaitable[T], *, ephemeral: bool = False
) -> T:
    """The result of `work`, deferring the interaction if `work` is slow. An error raised
    before the deferral leaves the interaction unanswered, for the tree's private reply."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(task), DEFER_AFTER)
    except TimeoutError:
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        # A late error must not take the place of this public "thinking…" (bot/tree.py).
        interaction.extras[DEFERRED_PUBLICLY] = not ephemeral
        return await task


async def answer(interaction: discord.Interaction, text: str, *, ephemeral: bool = False) -> None:
    """Reply, or follow up a deferral."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=ephemeral, allowed_mentions=QUIET)
    else:
        await interaction.response.send_message(text, ephemeral=ephemeral, allowed_mentions=QUIET)
