"""Test-side helpers: build guilds, channels, threads, users and roles; act as a user.

Changes made while the bot is connected emit the matching gateway events.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from . import payloads
from .gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGE_TYPING,
    GUILD_MEMBERS,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGE_TYPING,
    GUILDS,
    Gateway,
)
from .state import (
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    Overwrite,
    Perm,
    Role,
    User,
    World,
)


def _id(obj: Any) -> int:
    return int(getattr(obj, "id", obj))


class ActorsMixin:
    """Mixed into DiscordDouble, which provides these attributes and methods."""

    world: World
    gateway: Gateway
    typing: list[tuple[int, int]]
    if TYPE_CHECKING:

        def publish_create(self, m: Message) -> Message: ...
        def publish_update(self, m: Message) -> None: ...
        def publish_delete(self, m: Message) -> None: ...
        def _notify(self) -> None: ...

    # -- building the world --------------------------------------------------------------

    def create_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        avatar: str | None = None,
        bot: bool = False,
    ) -> User:
        return self.world.add_user(username, global_name=global_name, avatar=avatar, bot=bot)

    def create_guild(
        self,
        name: str = "Test Guild",
        *,
        owner: User | None = None,
        bot_permissions: int = Perm.BOT_DEFAULT,
        everyone_permissions: int = Perm.EVERYONE_DEFAULT,
        with_bot: bool = True,
    ) -> Guild:
        """A guild with @everyone and, if ``with_bot``, the bot as member with a managed role."""
        owner = owner or self.create_user(f"{name.lower().replace(' ', '_')}_owner")
        guild = self.world.add_guild(name, owner)
        self.world.roles[guild.id].permissions = everyone_permissions
        self.world.add_member(guild, owner)
        if with_bot:
            role = self.world.add_role(
                guild, self.world.bot.username, bot_permissions, managed=True
            )
            self.world.add_member(guild, self.world.bot, [role])
            self._emit_guild_create(guild)
        return guild

    def add_bot_to_guild(self, guild: Guild, permissions: int) -> None:
        role = self.world.add_role(guild, self.world.bot.username, permissions, managed=True)
        self.world.add_member(guild, self.world.bot, [role])
        self._emit_guild_create(guild)

    def _emit_guild_create(self, guild: Guild) -> None:
        def build(intents: int) -> dict[str, Any]:
            return payloads.guild(guild, self.world, with_members=bool(intents & GUILD_MEMBERS))

        self.gateway.dispatch("GUILD_CREATE", build, GUILDS)

    def create_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = self.world.add_role(guild, name, permissions)
        data = {"guild_id": str(guild.id), "role": payloads.role(role)}
        self.gateway.dispatch("GUILD_ROLE_CREATE", data, GUILDS)
        return role

    def set_role_permissions(self, role: Role, permissions: int) -> None:
        role.permissions = permissions
        data = {"guild_id": str(role.guild_id), "role": payloads.role(role)}
        self.gateway.dispatch("GUILD_ROLE_UPDATE", data, GUILDS)

    def add_member(
        self,
        guild: Guild,
        user: User,
        *,
        roles: list[Role] | None = None,
        nick: str | None = None,
    ) -> Member:
        member = self.world.add_member(guild, user, roles)
        member.nick = nick
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD",
            {**payloads.member(member), "guild_id": str(guild.id)},
            GUILD_MEMBERS,
        )
        return member

    def give_role(self, guild: Guild, user: User, role: Role) -> None:
        member = self.world.members[(guild.id, user.id)]
        if role.id not in member.role_ids:
            member.role_ids.append(role.id)
        data = {**payloads.member(member), "guild_id": str(guild.id)}
        self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, GUILD_MEMBERS)

    def create_channel(
        self,
        guild: Guild,
        name: str,
        *,
        topic: str | None = None,
        category: Channel | None = None,
        type: int = ChannelType.TEXT,
        overwrites: list[Overwrite] | None = None,
    ) -> Channel:
        position = len(self.world.guild_channels(guild, threads=False))
        channel = Channel(
            self.world.ids.next(),
            type,
            name,
            guild.id,
            category.id if category else None,
            position,
            topic,
            list(overwrites or []),
        )
        self.world.add_channel(channel)
        self.gateway.dispatch("CHANNEL_CREATE", payloads.channel(channel, self.world), GUILDS)
        return channel

    def set_overwrite(
        self, channel: Channel, target: Role | User, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Channel permission overwrite for a role (or @everyone: the guild's id) or a member."""
        kind = 0 if isinstance(target, Role) else 1
        channel.overwrites = [o for o in channel.overwrites if o.id != target.id]
        channel.overwrites.append(Overwrite(target.id, kind, allow, deny))
        self.gateway.dispatch("CHANNEL_UPDATE", payloads.channel(channel, self.world), GUILDS)

    def create_thread(
        self,
        parent: Channel,
        name: str,
        *,
        owner: User | None = None,
        private: bool = False,
    ) -> Channel:
        thread = Channel(
            self.world.ids.next(),
            ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD,
            name,
            parent.guild_id,
            parent.id,
            owner_id=(owner or self.world.bot).id,
        )
        self.world.add_channel(thread)
        data = {**payloads.channel(thread, self.world), "newly_created": True}
        self.gateway.dispatch("THREAD_CREATE", data, GUILDS)
        return thread

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between ``user`` and the bot (created on first use)."""
        for ch in self.world.channels.values():
            if ch.type == ChannelType.DM and ch.recipient_ids == [user.id]:
                return ch
        return self.world.add_channel(
            Channel(self.world.ids.next(), ChannelType.DM, "", recipient_ids=[user.id])
        )

    # -- acting as a user ----------------------------------------------------------------

    async def user_sends(
        self,
        user: User,
        channel: Channel,
        content: str = "",
        *,
        embeds: list[dict[str, Any]] | None = None,
        reply_to: Message | None = None,
    ) -> Message:
        """``user`` posts a message in ``channel``; the bot gets MESSAGE_CREATE."""
        perms = self.world.permissions_in(channel.id, user.id)
        needed = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
        if not perms & needed:
            raise PermissionError(f"{user.username} cannot send messages in #{channel.name}")
        users, roles, everyone = payloads.resolve_mentions(
            content, None, self.world, channel.guild_id
        )
        message = Message(
            self.world.ids.next(),
            channel.id,
            channel.guild_id,
            user,
            content,
            embeds=list(embeds or []),
            mention_ids=users,
            mention_role_ids=roles,
            mention_everyone=everyone and bool(perms & Perm.MENTION_EVERYONE),
        )
        if reply_to is not None:
            message.type = 19
            message.message_reference = {
                "type": 0,
                "message_id": str(reply_to.id),
                "channel_id": str(reply_to.channel_id),
            }
        return self.publish_create(message)

    async def user_edits(self, message: Message, content: str) -> None:
        message.content = content
        message.edited_at = dt.datetime.now(dt.UTC)
        self.publish_update(message)

    async def user_deletes(self, message: Message) -> None:
        self.publish_delete(message)

    async def user_reacts(self, user: User, message: Message, emoji: str) -> None:
        users = message.reactions.setdefault(emoji, [])
        if user.id not in users:
            users.append(user.id)
        self.emit_reaction("MESSAGE_REACTION_ADD", message, user.id, emoji)

    def emit_reaction(self, event: str, m: Message, user_id: int, emoji: str) -> None:
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(m.channel_id),
            "message_id": str(m.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if m.guild_id is not None:
            data["guild_id"] = str(m.guild_id)
        intent = GUILD_MESSAGE_REACTIONS if m.guild_id is not None else DIRECT_MESSAGE_REACTIONS
        self.gateway.dispatch(event, data, intent)

    async def user_types(self, user: User, channel: Channel) -> None:
        self.emit_typing(channel, user.id)

    def emit_typing(self, channel: Channel, user_id: int) -> None:
        self.typing.append((channel.id, user_id))
        data: dict[str, Any] = {
            "channel_id": str(channel.id),
            "user_id": str(user_id),
            "timestamp": int(time.time()),
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        intent = GUILD_MESSAGE_TYPING if channel.guild_id is not None else DIRECT_MESSAGE_TYPING
        self.gateway.dispatch("TYPING_START", data, intent)
