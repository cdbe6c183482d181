"""Interactions: users run slash commands, autocomplete, buttons and modals; the bot answers.

The test side builds INTERACTION_CREATE from the commands the bot synced (so option types,
sub-commands and ``default_member_permissions`` are Discord's), with the invoking member's
permissions and the bot's ``app_permissions`` in that channel. The REST side (callbacks,
followups, ``@original``) calls :meth:`InteractionsMixin.handle_callback` and friends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors, payloads
from .errors import ApiError, validate_message
from .gateway import Gateway
from .state import Channel, Message, Role, User, World
from .views import EPHEMERAL, LOADING

APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Callback types Discord accepts per interaction type (4 message, 5 deferred message,
# 6 deferred update, 7 update message, 8 autocomplete result, 9 modal).
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {4, 5, 9},
    COMPONENT: {4, 5, 6, 7, 9},
    AUTOCOMPLETE: {8},
    MODAL_SUBMIT: {4, 5, 6, 7},
}


@dataclass
class Invocation:
    """One interaction sent to the bot, and everything the bot answered to it."""

    id: int
    token: str
    type: int
    user: User
    channel: Channel
    created: float
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)
    response_type: int | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    message: Message | None = None  # the message a component belongs to

    async def wait_response(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Wait for the bot's callback; returns its type (4 message, 5 deferred, …)."""
        await asyncio.wait_for(self.acknowledged.wait(), timeout)
        assert self.response_type is not None
        return self.response_type


class InteractionsMixin:
    """Mixed into DiscordDouble, which provides these attributes and methods."""

    world: World
    gateway: Gateway
    if TYPE_CHECKING:

        def publish_create(self, m: Message) -> Message: ...
        def publish_update(self, m: Message) -> None: ...
        def publish_delete(self, m: Message) -> None: ...
        def _notify(self) -> None: ...

    def __init__(self) -> None:
        self.invocations: dict[int, Invocation] = {}
        self.interaction_deadline = 3.0  # seconds to send the initial callback, as on Discord

    # -- test side -------------------------------------------------------------------------

    def find_command(self, name: str, guild_id: int | None) -> dict[str, Any]:
        for scope in (guild_id, None):
            for cmd in self.world.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        raise LookupError(f"/{name} is not registered: did the bot sync its command tree?")

    async def run_slash_command(
        self,
        user: User,
        channel: Channel,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        bypass_default_permissions: bool = False,
        wait: bool = True,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Invocation:
        """``user`` runs ``/name [subcommand] options`` in ``channel``.

        ``subcommand`` is ``"sub"`` or ``"group sub"``. With ``wait`` the bot's initial
        callback is awaited (TimeoutError: 'the application did not respond').
        """
        data = self._command_data(user, channel, name, options or {}, subcommand, None)
        if not bypass_default_permissions:
            required = data.pop("_default_member_permissions")
            perms = self.world.permissions_in(channel.id, user.id)
            if required is not None and int(required) & ~perms:
                raise PermissionError(f"/{name} is hidden from {user.username} (permissions)")
        data.pop("_default_member_permissions", None)
        inv = self._dispatch_interaction(APPLICATION_COMMAND, user, channel, data)
        if wait:
            await inv.wait_response(timeout)
        return inv

    async def autocomplete(
        self,
        user: User,
        channel: Channel,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        subcommand: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """The choices the bot offers while ``user`` types option ``focused``."""
        data = self._command_data(user, channel, name, options, subcommand, focused)
        data.pop("_default_member_permissions", None)
        inv = self._dispatch_interaction(AUTOCOMPLETE, user, channel, data)
        await inv.wait_response(timeout)
        return inv.choices or []

    async def press_button(
        self,
        user: User,
        message: Message,
        custom_id: str,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Invocation:
        """``user`` clicks a button (or picks ``values`` in a select) on ``message``."""
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        channel = self.world.channels[message.channel_id]
        inv = self._dispatch_interaction(COMPONENT, user, channel, data, message)
        await inv.wait_response(timeout)
        return inv

    async def submit_modal(
        self,
        user: User,
        channel: Channel,
        custom_id: str,
        values: dict[str, str],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Invocation:
        """``user`` submits the modal ``custom_id`` with text inputs ``{custom_id: value}``."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
            for key, value in values.items()
        ]
        data = {"custom_id": custom_id, "components": rows}
        inv = self._dispatch_interaction(MODAL_SUBMIT, user, channel, data)
        await inv.wait_response(timeout)
        return inv

    def _command_data(
        self,
        user: User,
        channel: Channel,
        name: str,
        values: dict[str, Any],
        subcommand: str | None,
        focused: str | None,
    ) -> dict[str, Any]:
        cmd = self.find_command(name, channel.guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        node = cmd
        for part in (subcommand or "").split():
            node = self._sub_schema(node, subcommand or "", part)
        leaf = self._build_options(node.get("options") or [], values, resolved, channel, focused)
        if subcommand:
            leaf = _nest(subcommand.split(), cmd, leaf)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": leaf}
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        data["_default_member_permissions"] = cmd.get("default_member_permissions")
        return data

    @staticmethod
    def _sub_schema(parent: dict[str, Any], path: str, part: str) -> dict[str, Any]:
        for opt in parent.get("options") or []:
            if opt["name"] == part and opt["type"] in (1, 2):
                return dict(opt)
        raise LookupError(f"no sub-command {part!r} in {path!r}")

    def _build_options(
        self,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        channel: Channel,
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema if o["type"] not in (1, 2)}
        missing = [
            n for n, o in by_name.items() if o.get("required") and n not in values and not focused
        ]
        if missing:
            raise ValueError(f"missing required option(s): {', '.join(missing)}")
        options = []
        for key, value in values.items():
            if key not in by_name:
                raise LookupError(f"unknown option {key!r}; known: {sorted(by_name)}")
            kind = by_name[key]["type"]
            option = {
                "name": key,
                "type": kind,
                "value": self._resolve(kind, value, resolved, channel),
            }
            if key == focused:
                option["focused"] = True
                option["value"] = str(value)
            options.append(option)
        return options

    def _resolve(
        self,
        kind: int,
        value: Any,
        resolved: dict[str, dict[str, Any]],
        channel: Channel,
    ) -> Any:
        world = self.world
        if kind in (6, 9) and isinstance(value, User):
            resolved.setdefault("users", {})[str(value.id)] = payloads.user(value)
            member = world.member(channel.guild_id, value.id)
            if member is not None:
                perms = world.permissions_in(channel.id, value.id)
                data = payloads.member(member, with_user=False, permissions=perms)
                resolved.setdefault("members", {})[str(value.id)] = data
            return str(value.id)
        if kind in (8, 9) and isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = payloads.role(value)
            return str(value.id)
        if kind == 7 and isinstance(value, Channel):
            data = payloads.channel(value, world)
            data["permissions"] = str(world.permissions_in(value.id, world.bot.id))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        return value

    def _dispatch_interaction(
        self,
        kind: int,
        user: User,
        channel: Channel,
        data: dict[str, Any],
        message: Message | None = None,
    ) -> Invocation:
        world = self.world
        loop = asyncio.get_running_loop()
        inv = Invocation(world.ids.next(), world.new_token(), kind, user, channel, loop.time())
        inv.message = message
        self.invocations[inv.id] = inv
        payload: dict[str, Any] = {
            "id": str(inv.id),
            "application_id": str(world.application_id),
            "type": kind,
            "data": data,
            "token": inv.token,
            "version": 1,
            "channel_id": str(channel.id),
            "channel": payloads.channel(channel, world),
            "app_permissions": str(world.permissions_in(channel.id, world.bot.id)),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "context": 0 if channel.guild_id else 1,
        }
        if channel.guild_id is not None:
            member = world.members[(channel.guild_id, user.id)]
            perms = world.permissions_in(channel.id, user.id)
            payload["guild_id"] = str(channel.guild_id)
            payload["guild"] = {"id": str(channel.guild_id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = payloads.member(member, permissions=perms)
            payload["authorizing_integration_owners"] = {"0": str(channel.guild_id)}
        else:
            payload["user"] = payloads.user(user)
            payload["authorizing_integration_owners"] = {"1": str(user.id)}
        if message is not None:
            payload["message"] = payloads.message(message, world)
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inv

    # -- bot side (called from REST routes) -------------------------------------------------

    def invocation_for(self, interaction_id: int, token: str) -> Invocation:
        inv = self.invocations.get(interaction_id)
        if inv is None or inv.token != token:
            raise errors.unknown("interaction", errors.UNKNOWN_INTERACTION)
        return inv

    def invocation_by_token(self, token: str) -> Invocation | None:
        return next((i for i in self.invocations.values() if i.token == token), None)

    def handle_callback(self, inv: Invocation, body: dict[str, Any]) -> dict[str, Any]:
        if inv.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if asyncio.get_running_loop().time() - inv.created > self.interaction_deadline:
            raise errors.unknown("interaction", errors.UNKNOWN_INTERACTION)
        kind, data = int(body["type"]), body.get("data") or {}
        if kind not in ALLOWED_CALLBACKS[inv.type]:
            rule = {"code": "INTERACTION_RESPONSE_TYPE_INVALID", "message": "Invalid response type"}
            raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [rule]}})
        message: Message | None = None
        if kind == 4:
            validate_message(data, creating=True)
            message = self._response_message(inv, data, loading=False)
        elif kind == 5:
            message = self._response_message(inv, data, loading=True)
        elif kind == 7 and inv.message is not None:
            validate_message(data, creating=False)
            self.apply_edit(inv.message, data)
            message = inv.message
        elif kind == 8:
            inv.choices = list(data.get("choices") or [])
        elif kind == 9:
            inv.modal = data
        inv.response_type = kind
        inv.acknowledged.set()
        self._notify()
        interaction: dict[str, Any] = {"id": str(inv.id), "type": inv.type}
        result: dict[str, Any] = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = bool(message.flags & LOADING)
            interaction["response_message_ephemeral"] = bool(message.flags & EPHEMERAL)
            result["resource"] = {"type": kind, "message": payloads.message(message, self.world)}
        return result

    def _response_message(self, inv: Invocation, data: dict[str, Any], *, loading: bool) -> Message:
        world = self.world
        m = Message(world.ids.next(), inv.channel.id, inv.channel.guild_id, world.bot)
        m.webhook_id = m.application_id = world.application_id
        m.type = 20 if inv.type == APPLICATION_COMMAND else 0
        m.interaction_metadata = {
            "id": str(inv.id),
            "type": inv.type,
            "user": payloads.user(inv.user),
            "authorizing_integration_owners": {"0": str(inv.channel.guild_id or 0)},
        }
        flags = int(data.get("flags") or 0)
        m.flags = flags | (LOADING if loading else 0)
        if flags & EPHEMERAL:
            m.visible_to = inv.user.id
        if not loading:
            self.apply_edit(m, data, edited=False)
        if inv.original is None:
            inv.original = m
        else:
            inv.followups.append(m)
        return self.publish_create(m)

    def apply_edit(self, m: Message, data: dict[str, Any], *, edited: bool = True) -> None:
        """Apply a message body (content, embeds, components, allowed_mentions) to ``m``."""
        for key in ("content", "embeds", "components", "allowed_mentions", "attachments"):
            if key in data:
                setattr(m, key, data[key] if data[key] is not None else type(getattr(m, key))())
        m.content = m.content or ""
        m.mention_ids, m.mention_role_ids, m.mention_everyone = payloads.resolve_mentions(
            m.content, m.allowed_mentions, self.world, m.guild_id
        )
        if edited and not m.flags & LOADING:
            m.edited_at = dt.datetime.now(dt.UTC)
        m.flags &= ~LOADING

    def followup(self, inv: Invocation, data: dict[str, Any]) -> Message:
        """A followup; the first one after a deferral replaces the 'thinking…' message (unless
        that was deleted: then it is a new message with its own flags)."""
        if inv.response_type is None:
            raise errors.unknown("Webhook", errors.UNKNOWN_WEBHOOK)
        validate_message(data, creating=True)
        original = inv.original
        if original is not None and original.flags & LOADING and not original.deleted:
            self.apply_edit(original, data)
            self.publish_update(original)
            return original
        return self._response_message(inv, data, loading=False)


def _nest(path: list[str], cmd: dict[str, Any], leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap leaf options in their sub-command (type 1) and group (type 2) options."""
    chain = []
    node = cmd
    for part in path:
        node = next(o for o in node.get("options") or [] if o["name"] == part)
        chain.append(node)
    options = leaf
    for node in reversed(chain):
        options = [{"name": node["name"], "type": node["type"], "options": options}]
    return options
