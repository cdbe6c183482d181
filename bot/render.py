"""Engine results as Discord embeds."""

from __future__ import annotations

import discord

from engine.results import SceneView


def scene_embed(scene: SceneView) -> discord.Embed:
    embed = discord.Embed(
        title=scene.location_name, description=scene.location_description[:4000] or None
    )
    embed.add_field(name="Time", value=scene.time_of_day or "—")
    embed.add_field(name="Weather", value=scene.weather or "—")
    embed.add_field(name="Mood", value=scene.tone or "—")
    people = [
        f"**{c.name}**"
        + (" (player)" if c.player_user_id else "")
        + (f" — {c.mood}" if c.mood else "")
        for c in scene.present
    ]
    embed.add_field(name="Here", value="\n".join(people)[:1024] or "Nobody.", inline=False)
    embed.set_footer(text=f"Turn {scene.turn_count}")
    return embed
