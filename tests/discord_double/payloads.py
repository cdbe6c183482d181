"""Serialise the double's world into the JSON shapes Discord sends (API v10)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .state import (
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    Role,
    User,
    Webhook,
    World,
    iso,
    snowflake_time,
)

MESSAGE_CONTENT_INTENT = 1 << 15
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


def avatar_hash(url: str) -> str:
    """Discord re-hosts webhook avatars; the payload carries a hash, never the source URL."""
    return hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": u.avatar,
        "bot": u.bot,
        "public_flags": 0,
        "flags": 0,
    }


def role(r: Role) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "name": r.name,
        "color": r.color,
        "colors": {"primary_color": r.color, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed,
        "mentionable": False,
        "flags": 0,
    }


def member(m: Member, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nick": m.nick,
        "avatar": None,
        "roles": [str(r) for r in m.role_ids],
        "joined_at": iso(m.joined_at),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user(m.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def channel(c: Channel, world: World) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(c.id),
        "type": c.type,
        "name": c.name,
        "last_message_id": str(c.last_message_id) if c.last_message_id else None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
    if c.type == ChannelType.DM:
        data["recipients"] = [user(world.users[u]) for u in c.recipient_ids]
        del data["name"]
        return data
    data["guild_id"] = str(c.guild_id)
    data["parent_id"] = str(c.parent_id) if c.parent_id else None
    if c.is_thread:
        created = snowflake_time(c.id)
        data["owner_id"] = str(c.owner_id)
        data["member_count"] = 1
        data["message_count"] = len(world.visible_messages(c.id))
        data["total_message_sent"] = data["message_count"]
        data["thread_metadata"] = {
            "archived": c.archived,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso(created),
            "locked": c.locked,
            "create_timestamp": iso(created),
        }
        return data
    data.update(
        position=c.position,
        topic=c.topic,
        nsfw=False,
        permission_overwrites=[
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in c.overwrites
        ],
    )
    return data


def guild(g: Guild, world: World, *, with_members: bool) -> dict[str, Any]:
    members = world.guild_members(g)
    shown = members if with_members else [m for m in members if m.user.id == world.bot.id]
    return {
        "id": str(g.id),
        "name": g.name,
        "icon": None,
        "owner_id": str(g.owner_id),
        "unavailable": False,
        "large": False,
        "member_count": len(members),
        "roles": [role(world.roles[r]) for r in g.role_ids],
        "members": [member(m) for m in shown],
        "channels": [channel(c, world) for c in world.guild_channels(g, threads=False)],
        "threads": [channel(c, world) for c in world.guild_channels(g, threads=True)],
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "system_channel_id": None,
        "system_channel_flags": 0,
        "afk_timeout": 300,
        "joined_at": iso(snowflake_time(g.id)),
    }


def webhook(w: Webhook, world: World, *, with_token: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(w.id),
        "type": 1,
        "guild_id": str(w.guild_id) if w.guild_id else None,
        "channel_id": str(w.channel_id),
        "name": w.name,
        "avatar": w.avatar,
        "application_id": str(w.application_id) if w.application_id else None,
    }
    if with_token:
        data["token"] = w.token
    if w.creator_id is not None:
        data["user"] = user(world.users[w.creator_id])
    return data


def message_author(m: Message) -> dict[str, Any]:
    if m.is_webhook_persona:
        return {
            "id": str(m.webhook_id),
            "username": m.username or m.author.username,
            "discriminator": "0000",
            "global_name": None,
            "avatar": avatar_hash(m.avatar_url) if m.avatar_url else m.author.avatar,
            "bot": True,
            "public_flags": 0,
        }
    return user(m.author)


def content_visible(m: Message, world: World, intents: int) -> bool:
    """Discord's MESSAGE_CONTENT rule: without the intent only these keep their content."""
    if intents & MESSAGE_CONTENT_INTENT:
        return True
    channel_obj = world.channels.get(m.channel_id)
    return (
        m.author.id == world.bot.id
        or m.application_id == world.application_id  # interaction replies, app-owned webhooks
        or world.bot.id in m.mention_ids
        or (channel_obj is not None and channel_obj.type == ChannelType.DM)
    )


def message(
    m: Message, world: World, *, viewer_id: int | None = None, full_content: bool = True
) -> dict[str, Any]:
    viewer_id = viewer_id if viewer_id is not None else world.bot.id
    data: dict[str, Any] = {
        "id": str(m.id),
        "channel_id": str(m.channel_id),
        "author": message_author(m),
        "content": m.content if full_content else "",
        "timestamp": iso(m.created_at),
        "edited_timestamp": iso(m.edited_at) if m.edited_at else None,
        "tts": m.tts,
        "mention_everyone": m.mention_everyone,
        "mentions": [user(world.users[u]) for u in m.mention_ids if u in world.users],
        "mention_roles": [str(r) for r in m.mention_role_ids],
        "attachments": m.attachments if full_content else [],
        "embeds": m.embeds if full_content else [],
        "components": m.components if full_content else [],
        "reactions": [
            {
                "emoji": {"id": None, "name": emoji},
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "me": viewer_id in users,
                "me_burst": False,
                "burst_colors": [],
            }
            for emoji, users in m.reactions.items()
            if users
        ],
        "pinned": False,
        "type": m.type,
        "flags": m.flags,
    }
    if m.guild_id is not None:
        data["guild_id"] = str(m.guild_id)
        author_member = world.member(m.guild_id, m.author.id)
        if author_member is not None and m.webhook_id is None:
            data["member"] = member(author_member, with_user=False)
    if m.webhook_id is not None:
        data["webhook_id"] = str(m.webhook_id)
    if m.application_id is not None:
        data["application_id"] = str(m.application_id)
    if m.interaction_metadata is not None:
        data["interaction_metadata"] = m.interaction_metadata
    if m.message_reference is not None:
        data["message_reference"] = m.message_reference
    if m.nonce is not None:
        data["nonce"] = m.nonce
    return data


def resolve_mentions(
    content: str, allowed: dict[str, Any] | None, world: World, guild_id: int | None
) -> tuple[list[int], list[int], bool]:
    """Users and roles that a message pings, honouring ``allowed_mentions`` as Discord does."""
    users = [int(u) for u in USER_MENTION.findall(content) if int(u) in world.users]
    roles = [int(r) for r in ROLE_MENTION.findall(content) if int(r) in world.roles]
    everyone = "@everyone" in content or "@here" in content
    if allowed is not None:
        parse = allowed.get("parse", [])
        listed_users = {int(u) for u in allowed.get("users", [])}
        listed_roles = {int(r) for r in allowed.get("roles", [])}
        users = [u for u in users if "users" in parse or u in listed_users]
        roles = [r for r in roles if "roles" in parse or r in listed_roles]
        everyone = everyone and "everyone" in parse
    if guild_id is None:
        roles = []
    return list(dict.fromkeys(users)), list(dict.fromkeys(roles)), everyone
