"""The double's world: users, guilds, roles, channels, threads, messages and webhooks.

Plain dataclasses plus :class:`World`, which owns them, hands out snowflakes and computes
permissions the way Discord does (base role permissions, then channel overwrites).
Serialising to Discord's JSON shapes lives in ``payloads.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000


class Perm:
    """Permission bits used by the double (values from Discord's documentation)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 51) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
    )
    BOT_DEFAULT = EVERYONE_DEFAULT | MANAGE_WEBHOOKS | MANAGE_MESSAGES | MANAGE_THREADS


class ChannelType:
    TEXT = 0
    DM = 1
    VOICE = 2
    CATEGORY = 4
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    THREADS = (PUBLIC_THREAD, PRIVATE_THREAD)


class SnowflakeGenerator:
    """Real, timestamp-based snowflakes: (ms since 2015) << 22 | worker | process | increment."""

    def __init__(self) -> None:
        self._last = 0
        self._increment = itertools.count()

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (1 << 12) | (next(self._increment) & 0xFFF)
        self._last = max(value, self._last + 1)
        return self._last


def snowflake_time(snowflake: int) -> dt.datetime:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    avatar: str | None = None
    bot: bool = False

    @property
    def display_name(self) -> str:
        return self.global_name or self.username

    @property
    def avatar_url(self) -> str | None:
        if self.avatar is None:
            return None
        return f"https://cdn.discordapp.com/avatars/{self.id}/{self.avatar}.png"


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    color: int = 0


@dataclass
class Member:
    user: User
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def display_name(self) -> str:
        return self.nick or self.user.display_name


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int] = field(default_factory=list)
    role_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)


@dataclass
class Channel:
    id: int
    type: int
    name: str
    guild_id: int | None = None
    parent_id: int | None = None
    position: int = 0
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_ids: list[int] = field(default_factory=list)
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    last_message_id: int | None = None

    @property
    def is_thread(self) -> bool:
        return self.type in ChannelType.THREADS


@dataclass
class Webhook:
    id: int
    channel_id: int
    guild_id: int | None
    name: str
    token: str
    creator_id: int | None = None
    avatar: str | None = None
    application_id: int | None = None
    deleted: bool = False


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    type: int = 0
    flags: int = 0
    tts: bool = False
    edited_at: dt.datetime | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    username: str | None = None  # per-message webhook name
    avatar_url: str | None = None  # per-message webhook avatar
    allowed_mentions: dict[str, Any] | None = None
    mention_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    reactions: dict[str, list[int]] = field(default_factory=dict)
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    nonce: str | int | None = None
    visible_to: int | None = None  # ephemeral: only this user sees it
    deleted: bool = False

    @property
    def created_at(self) -> dt.datetime:
        return snowflake_time(self.id)

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    @property
    def is_webhook_persona(self) -> bool:
        """Posted through a channel webhook (not an interaction response or followup)."""
        return self.webhook_id is not None and self.interaction_metadata is None


EventSink = Callable[[str, dict[str, Any], int], None]
"""Called as ``sink(event_name, data, required_intent_bits)`` for every gateway event."""


class World:
    """All state of the double. Mutating helpers here emit no events; callers do."""

    def __init__(self, *, bot_name: str = "Dreamwalkers", bot_token: str = "test-token") -> None:
        self.ids = SnowflakeGenerator()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.roles: dict[int, Role] = {}
        self.members: dict[tuple[int, int], Member] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.bot_token = bot_token
        self.application_id = self.ids.next()
        self.bot = self.add_user(bot_name, bot=True, user_id=self.application_id)
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global)

    # -- creation -------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        avatar: str | None = None,
        bot: bool = False,
        user_id: int | None = None,
    ) -> User:
        user = User(user_id or self.ids.next(), username, global_name, avatar, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, owner: User) -> Guild:
        guild = Guild(self.ids.next(), name, owner.id)
        self.guilds[guild.id] = guild
        everyone = Role(guild.id, guild.id, "@everyone", Perm.EVERYONE_DEFAULT)
        self.roles[everyone.id] = everyone
        guild.role_ids.append(everyone.id)
        return guild

    def add_role(self, guild: Guild, name: str, permissions: int, *, managed: bool = False) -> Role:
        role = Role(self.ids.next(), guild.id, name, permissions, len(guild.role_ids), managed)
        self.roles[role.id] = role
        guild.role_ids.append(role.id)
        return role

    def add_member(self, guild: Guild, user: User, roles: list[Role] | None = None) -> Member:
        member = Member(user, guild.id, [r.id for r in roles or []])
        self.members[(guild.id, user.id)] = member
        if user.id not in guild.member_ids:
            guild.member_ids.append(user.id)
        return member

    def add_channel(self, channel: Channel) -> Channel:
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        if channel.guild_id is not None:
            self.guilds[channel.guild_id].channel_ids.append(channel.id)
        return channel

    def add_message(self, message: Message) -> Message:
        self.messages[message.id] = message
        self.channel_messages.setdefault(message.channel_id, []).append(message.id)
        self.channels[message.channel_id].last_message_id = message.id
        return message

    def new_token(self) -> str:
        return secrets.token_urlsafe(48)

    # -- lookups --------------------------------------------------------------------------

    def member(self, guild_id: int | None, user_id: int) -> Member | None:
        if guild_id is None:
            return None
        return self.members.get((guild_id, user_id))

    def guild_members(self, guild: Guild) -> list[Member]:
        return [self.members[(guild.id, uid)] for uid in guild.member_ids]

    def guild_channels(self, guild: Guild, *, threads: bool) -> list[Channel]:
        chans = [self.channels[cid] for cid in guild.channel_ids]
        return [c for c in chans if c.is_thread == threads]

    def visible_messages(self, channel_id: int) -> list[Message]:
        ids = self.channel_messages.get(channel_id, [])
        return [m for m in (self.messages[i] for i in ids) if not m.deleted]

    # -- permissions ----------------------------------------------------------------------

    def base_permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guilds[guild_id]
        if guild.owner_id == user_id:
            return Perm.ALL
        member = self.members.get((guild_id, user_id))
        if member is None:
            return 0
        perms = self.roles[guild_id].permissions
        for role_id in member.role_ids:
            perms |= self.roles[role_id].permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel_id: int, user_id: int) -> int:
        """Discord's algorithm: base permissions, then @everyone, role and member overwrites."""
        channel = self.channels[channel_id]
        if channel.guild_id is None:
            return Perm.EVERYONE_DEFAULT
        if channel.is_thread and channel.parent_id is not None:
            channel = self.channels[channel.parent_id]
        perms = self.base_permissions(channel.guild_id or 0, user_id)
        if perms & Perm.ADMINISTRATOR or perms == Perm.ALL:
            return Perm.ALL
        member = self.members.get((channel.guild_id or 0, user_id))
        by_id = {o.id: o for o in channel.overwrites}
        everyone = by_id.get(channel.guild_id or 0)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.role_ids if member else []:
            if (ow := by_id.get(role_id)) is not None and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        if (ow := by_id.get(user_id)) is not None and ow.type == 1:
            perms = (perms & ~ow.deny) | ow.allow
        return perms if perms & Perm.VIEW_CHANNEL else 0
