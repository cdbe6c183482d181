"""What a person in the Discord client sees: author name and avatar as shown, content, edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import Message, World

EPHEMERAL = 1 << 6
LOADING = 1 << 7


@dataclass(frozen=True)
class SeenMessage:
    """A message as shown in the channel. ``message`` is the double's stored record."""

    id: int
    channel_id: int
    author_id: int
    author_name: str
    avatar_url: str | None
    content: str
    embeds: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    edited: bool
    is_bot: bool
    webhook_id: int | None
    ephemeral: bool
    loading: bool
    reactions: dict[str, int]
    pinged_user_ids: list[int]
    message: Message = field(repr=False, compare=False)

    @property
    def embed_texts(self) -> list[str]:
        """Title and description of every embed, for quick assertions."""
        return [
            f"{e.get('title') or ''}\n{e.get('description') or ''}".strip() for e in self.embeds
        ]


def author_shown(m: Message, world: World) -> tuple[str, str | None]:
    """The name and avatar URL the Discord client renders next to a message."""
    if m.is_webhook_persona:
        hook = world.webhooks.get(m.webhook_id or 0)
        name = m.username or (hook.name if hook else m.author.username)
        if m.avatar_url:
            return name, m.avatar_url
        if hook is not None and hook.avatar:
            return name, f"https://cdn.discordapp.com/avatars/{hook.id}/{hook.avatar}.png"
        return name, None
    member = world.member(m.guild_id, m.author.id)
    name = member.display_name if member else m.author.display_name
    return name, m.author.avatar_url


def seen(m: Message, world: World) -> SeenMessage:
    name, avatar = author_shown(m, world)
    return SeenMessage(
        id=m.id,
        channel_id=m.channel_id,
        author_id=m.webhook_id if m.webhook_id and m.is_webhook_persona else m.author.id,
        author_name=name,
        avatar_url=avatar,
        content=m.content,
        embeds=list(m.embeds),
        attachments=list(m.attachments),
        edited=m.edited,
        is_bot=m.author.bot or m.webhook_id is not None,
        webhook_id=m.webhook_id,
        ephemeral=bool(m.flags & EPHEMERAL),
        loading=bool(m.flags & LOADING),
        reactions={emoji: len(users) for emoji, users in m.reactions.items() if users},
        pinged_user_ids=list(m.mention_ids),
        message=m,
    )


def visible_to(m: Message, viewer_id: int | None) -> bool:
    return not m.deleted and (m.visible_to is None or m.visible_to == viewer_id)
