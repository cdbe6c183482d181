"""Engine results as Discord embeds and messages."""

from __future__ import annotations

import discord

from engine.results import Recap, SceneView

MESSAGE_LIMIT = 2000
RECAP_POST_CHARS = 300


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


def recap_message(recap: Recap) -> str:
    """The recap in one message: the latest two chapters, the newest turn summaries that fit
    (the oldest go first), the last four posts."""
    count = recap.turn_count
    head = [f"After {count} turn{'s' * (count != 1)}:"]
    if recap.chapters:
        head += ["**The story so far**", *(f"• {c}" for c in recap.chapters[-2:]), "**Lately**"]
    tail = [f"**{p.speaker}:** {_shortened(p.text, RECAP_POST_CHARS)}" for p in recap.recent[-4:]]
    summaries = [f"• {s}" for s in recap.summaries]
    while summaries and len("\n".join(head + summaries + tail)) > MESSAGE_LIMIT:
        summaries.pop(0)
    return "\n".join(head + summaries + tail)[:MESSAGE_LIMIT]


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
