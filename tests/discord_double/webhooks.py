"""Webhook routes (create, list, execute, message edit/delete) and interaction callbacks.

``/webhooks/{id}/{token}`` serves both real webhooks and interaction followups, whose
"webhook" is the application id and whose token is the interaction token, as on Discord.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from aiohttp import web

from . import errors, payloads
from .errors import ApiError, validate_message
from .gateway import GUILD_WEBHOOKS
from .http_common import FILES, add_api_routes, body_of, double_of, json_response, no_content
from .interactions import Invocation
from .rest import apply_message_body, channel_or_404, require
from .state import Message, Perm, User, Webhook

routes = web.RouteTableDef()
MAX_WEBHOOKS_PER_CHANNEL = 15
HOOK = "/webhooks/{webhook_id:\\d+}/{token}"


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)


def _webhook(request: web.Request, *, check_token: bool) -> Webhook:
    hook = double_of(request).world.webhooks.get(int(request.match_info["webhook_id"]))
    if hook is None or hook.deleted:
        raise errors.unknown("Webhook", errors.UNKNOWN_WEBHOOK)
    if check_token and request.match_info["token"] != hook.token:
        raise ApiError(401, 50027, "Invalid Webhook Token")
    return hook


def _invocation(request: web.Request) -> Invocation | None:
    double = double_of(request)
    if int(request.match_info["webhook_id"]) != double.world.application_id:
        return None
    inv = double.invocation_by_token(request.match_info["token"])
    if inv is None:
        raise errors.unknown("Webhook", errors.UNKNOWN_WEBHOOK)
    return inv


def _emit_webhooks_update(request: web.Request, hook: Webhook) -> None:
    data = {"guild_id": str(hook.guild_id), "channel_id": str(hook.channel_id)}
    double_of(request).gateway.dispatch("WEBHOOKS_UPDATE", data, GUILD_WEBHOOKS)


# -- managing webhooks (bot token) ----------------------------------------------------------


@routes.post("/channels/{channel_id:\\d+}/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    double = double_of(request)
    world = double.world
    channel = channel_or_404(request)
    require(request, channel, Perm.MANAGE_WEBHOOKS)
    body = await body_of(request)
    name = str(body.get("name") or "")
    if not 1 <= len(name) <= 80 or "discord" in name.lower() or "clyde" in name.lower():
        rule = {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 80 in length."}
        raise ApiError(400, 50035, "Invalid Form Body", {"name": {"_errors": [rule]}})
    existing = [h for h in world.webhooks.values() if h.channel_id == channel.id and not h.deleted]
    if len(existing) >= MAX_WEBHOOKS_PER_CHANNEL:
        raise ApiError(400, 30007, "Maximum number of webhooks reached (15)")
    avatar = body.get("avatar")
    hook = Webhook(
        world.ids.next(), channel.id, channel.guild_id, name, world.new_token(), world.bot.id
    )
    hook.application_id = world.application_id  # created by the bot: application-owned
    if avatar:
        hook.avatar = hashlib.md5(str(avatar).encode(), usedforsecurity=False).hexdigest()
    world.webhooks[hook.id] = hook
    _emit_webhooks_update(request, hook)
    return json_response(payloads.webhook(hook, world))


@routes.get("/channels/{channel_id:\\d+}/webhooks")
async def channel_webhooks(request: web.Request) -> web.Response:
    world = double_of(request).world
    channel = channel_or_404(request)
    require(request, channel, Perm.MANAGE_WEBHOOKS)
    hooks = [h for h in world.webhooks.values() if h.channel_id == channel.id and not h.deleted]
    return json_response([payloads.webhook(h, world) for h in hooks])


@routes.get("/guilds/{guild_id:\\d+}/webhooks")
async def guild_webhooks(request: web.Request) -> web.Response:
    world = double_of(request).world
    guild_id = int(request.match_info["guild_id"])
    if not world.base_permissions(guild_id, world.bot.id) & Perm.MANAGE_WEBHOOKS:
        raise errors.missing_permissions()
    hooks = [h for h in world.webhooks.values() if h.guild_id == guild_id and not h.deleted]
    return json_response([payloads.webhook(h, world) for h in hooks])


@routes.get("/webhooks/{webhook_id:\\d+}")
@routes.get(HOOK)
async def get_webhook(request: web.Request) -> web.Response:
    has_token = "token" in request.match_info
    hook = _webhook(request, check_token=has_token)
    return json_response(payloads.webhook(hook, double_of(request).world, with_token=not has_token))


@routes.patch("/webhooks/{webhook_id:\\d+}")
@routes.patch(HOOK)
async def modify_webhook(request: web.Request) -> web.Response:
    hook = _webhook(request, check_token="token" in request.match_info)
    body = await body_of(request)
    if body.get("name"):
        hook.name = str(body["name"])
    if "avatar" in body:
        avatar = body["avatar"]
        hook.avatar = (
            hashlib.md5(avatar.encode(), usedforsecurity=False).hexdigest() if avatar else None
        )
    if body.get("channel_id") and "token" not in request.match_info:
        hook.channel_id = int(body["channel_id"])
    _emit_webhooks_update(request, hook)
    return json_response(payloads.webhook(hook, double_of(request).world))


@routes.delete("/webhooks/{webhook_id:\\d+}")
@routes.delete(HOOK)
async def delete_webhook(request: web.Request) -> web.Response:
    hook = _webhook(request, check_token="token" in request.match_info)
    if "token" not in request.match_info:
        require(request, double_of(request).world.channels[hook.channel_id], Perm.MANAGE_WEBHOOKS)
    hook.deleted = True
    _emit_webhooks_update(request, hook)
    return no_content()


# -- executing (webhook token) or interaction followups -------------------------------------


@routes.post(HOOK)
async def execute(request: web.Request) -> web.Response:
    double = double_of(request)
    body = await body_of(request)
    inv = _invocation(request)
    if inv is not None:
        message = double.followup(inv, body)
        return json_response(payloads.message(message, double.world))
    hook = _webhook(request, check_token=True)
    validate_message(body, creating=not request.get(FILES), webhook=True)
    channel = double.world.channels[hook.channel_id]
    if "thread_id" in request.query:
        thread = double.world.channels.get(int(request.query["thread_id"]))
        if thread is None or thread.parent_id != hook.channel_id:
            raise errors.unknown("Channel", errors.UNKNOWN_CHANNEL)
        channel = thread
    author = User(hook.id, hook.name, avatar=hook.avatar, bot=True)
    m = Message(double.world.ids.next(), channel.id, channel.guild_id, author, webhook_id=hook.id)
    m.application_id = hook.application_id
    m.username = body.get("username") or None
    m.avatar_url = body.get("avatar_url") or None
    m.tts = bool(body.get("tts"))
    apply_message_body(request, m, body)
    double.publish_create(m)
    if request.query.get("wait", "false").lower() in ("true", "1"):
        return json_response(payloads.message(m, double.world))
    return no_content()


def _hook_message(request: web.Request) -> tuple[Message, Invocation | None]:
    double = double_of(request)
    inv = _invocation(request)
    key = request.match_info["message_id"]
    if inv is not None:
        candidates = [inv.original, *inv.followups]
        wanted = inv.original if key == "@original" else None
        wanted = wanted or next((m for m in candidates if m and str(m.id) == key), None)
        if wanted is None or wanted.deleted:
            raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
        return wanted, inv
    hook = _webhook(request, check_token=True)
    m = double.world.messages.get(int(key)) if key.isdigit() else None
    if m is None or m.deleted or m.webhook_id != hook.id:
        raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
    if "thread_id" in request.query and str(m.channel_id) != request.query["thread_id"]:
        raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
    return m, None


@routes.get(HOOK + "/messages/{message_id}")
async def get_hook_message(request: web.Request) -> web.Response:
    m, _ = _hook_message(request)
    return json_response(payloads.message(m, double_of(request).world))


@routes.patch(HOOK + "/messages/{message_id}")
async def edit_hook_message(request: web.Request) -> web.Response:
    double = double_of(request)
    m, inv = _hook_message(request)
    body = await body_of(request)
    validate_message(body, creating=False)
    if inv is not None:
        double.apply_edit(m, body)
    else:
        before = (m.content, m.embeds)
        apply_message_body(request, m, body)
        if (m.content, m.embeds) != before:
            m.edited_at = dt.datetime.now(dt.UTC)
    double.publish_update(m)
    return json_response(payloads.message(m, double.world))


@routes.delete(HOOK + "/messages/{message_id}")
async def delete_hook_message(request: web.Request) -> web.Response:
    m, _ = _hook_message(request)
    double_of(request).publish_delete(m)
    return no_content()


@routes.post("/interactions/{interaction_id:\\d+}/{token}/callback")
async def interaction_callback(request: web.Request) -> web.Response:
    double = double_of(request)
    inv = double.invocation_for(
        int(request.match_info["interaction_id"]), request.match_info["token"]
    )
    result: dict[str, Any] = double.handle_callback(inv, await body_of(request))
    if request.query.get("with_response", "false").lower() in ("true", "1"):
        return json_response(result)
    return no_content()
