"""REST routes called with the bot token: login, channels, messages, reactions, commands."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from . import errors, payloads
from .errors import ApiError, validate_message
from .http_common import FILES, add_api_routes, body_of, double_of, json_response, no_content
from .state import Channel, ChannelType, Message, Perm

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)


def channel_or_404(request: web.Request, key: str = "channel_id") -> Channel:
    channel = double_of(request).world.channels.get(int(request.match_info[key]))
    if channel is None:
        raise errors.unknown("Channel", errors.UNKNOWN_CHANNEL)
    return channel


def message_or_404(request: web.Request, channel: Channel) -> Message:
    m = double_of(request).world.messages.get(int(request.match_info["message_id"]))
    if m is None or m.deleted or m.channel_id != channel.id or m.visible_to is not None:
        raise errors.unknown("Message", errors.UNKNOWN_MESSAGE)
    return m


def require(request: web.Request, channel: Channel, *bits: int) -> int:
    """The bot's permissions in ``channel``; 403 Missing Access/Permissions when lacking."""
    world = double_of(request).world
    perms = world.permissions_in(channel.id, world.bot.id)
    if not perms & Perm.VIEW_CHANNEL:
        raise errors.missing_access()
    for bit in bits:
        if not perms & bit:
            raise errors.missing_permissions()
    return perms


def bot_view(request: web.Request, m: Message) -> dict[str, Any]:
    """A message as returned to the bot over REST (content blanked without the intent)."""
    world = double_of(request).world
    intents = double_of(request).gateway.intents
    full = intents is None or payloads.content_visible(m, world, intents)
    return payloads.message(m, world, full_content=full)


def store_files(
    request: web.Request, body: dict[str, Any], keep: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Attachments: those kept from before plus files uploaded with this request."""
    double = double_of(request)
    described = {str(a.get("id")): a for a in body.get("attachments") or []}
    result = list(keep)
    for index, (_field, filename, data) in enumerate(request.get(FILES, [])):
        attachment_id = double.world.ids.next()
        double.files[attachment_id] = (filename, data)
        url = f"http://127.0.0.1:{double.port}/attachments/{attachment_id}/{filename}"
        meta = described.get(str(index), {})
        result.append(
            {
                "id": str(attachment_id),
                "filename": filename,
                "size": len(data),
                "url": url,
                "proxy_url": url,
                "content_type": "application/octet-stream",
                "description": meta.get("description"),
            }
        )
    return result


def apply_message_body(request: web.Request, m: Message, body: dict[str, Any]) -> None:
    """Copy the writable fields of a create/edit body onto ``m`` and resolve its mentions."""
    world = double_of(request).world
    if "content" in body:
        m.content = body["content"] or ""
    if "embeds" in body:
        m.embeds = body["embeds"] or []
    if "components" in body:
        m.components = body["components"] or []
    if "flags" in body and body["flags"] is not None:
        m.flags = int(body["flags"])
    if "allowed_mentions" in body:
        m.allowed_mentions = body["allowed_mentions"]
    if "attachments" in body or request.get(FILES):
        kept_ids = {str(a.get("id")) for a in body.get("attachments") or []}
        keep = [a for a in m.attachments if a["id"] in kept_ids]
        m.attachments = store_files(request, body, keep)
    m.mention_ids, m.mention_role_ids, m.mention_everyone = payloads.resolve_mentions(
        m.content, m.allowed_mentions, world, m.guild_id
    )


# -- login ---------------------------------------------------------------------------------


@routes.get("/users/@me")
async def get_me(request: web.Request) -> web.Response:
    return json_response(payloads.user(double_of(request).world.bot))


@routes.get("/users/{user_id:\\d+}")
async def get_user(request: web.Request) -> web.Response:
    user = double_of(request).world.users.get(int(request.match_info["user_id"]))
    if user is None:
        raise errors.unknown("User", 10013)
    return json_response(payloads.user(user))


@routes.get("/oauth2/applications/@me")
@routes.get("/applications/@me")
async def get_application(request: web.Request) -> web.Response:
    world = double_of(request).world
    return json_response(
        {
            "id": str(world.application_id),
            "name": world.bot.username,
            "icon": None,
            "description": "Dreamwalkers test application",
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": (1 << 19) | (1 << 15),
            "owner": payloads.user(world.bot),
            "team": None,
            "summary": "",
            "rpc_origins": [],
            "bot": payloads.user(world.bot),
        }
    )


@routes.get("/gateway")
async def get_gateway(request: web.Request) -> web.Response:
    return json_response({"url": double_of(request).gateway_url})


@routes.get("/gateway/bot")
async def get_gateway_bot(request: web.Request) -> web.Response:
    limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
    return json_response(
        {"url": double_of(request).gateway_url, "shards": 1, "session_start_limit": limit}
    )


# -- channels and messages -----------------------------------------------------------------


@routes.get("/channels/{channel_id:\\d+}")
async def get_channel(request: web.Request) -> web.Response:
    channel = channel_or_404(request)
    require(request, channel)
    return json_response(payloads.channel(channel, double_of(request).world))


@routes.post("/channels/{channel_id:\\d+}/messages")
async def create_message(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    send = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
    require(request, channel, send)
    body = await body_of(request)
    validate_message(body, creating=not request.get(FILES))
    m = Message(double.world.ids.next(), channel.id, channel.guild_id, double.world.bot)
    m.tts, m.nonce = bool(body.get("tts")), body.get("nonce")
    apply_message_body(request, m, body)
    ref = body.get("message_reference")
    if ref:
        m.type = 19
        m.message_reference = {
            "type": 0,
            "message_id": str(ref["message_id"]),
            "channel_id": str(ref.get("channel_id") or channel.id),
        }
    double.publish_create(m)
    return json_response(bot_view(request, m))


@routes.get("/channels/{channel_id:\\d+}/messages/{message_id:\\d+}")
async def get_message(request: web.Request) -> web.Response:
    channel = channel_or_404(request)
    require(request, channel, Perm.READ_MESSAGE_HISTORY)
    return json_response(bot_view(request, message_or_404(request, channel)))


@routes.get("/channels/{channel_id:\\d+}/messages")
async def get_history(request: web.Request) -> web.Response:
    channel = channel_or_404(request)
    require(request, channel, Perm.READ_MESSAGE_HISTORY)
    q = request.query
    limit = max(1, min(100, int(q.get("limit", 50))))
    messages = [
        m for m in double_of(request).world.visible_messages(channel.id) if not m.visible_to
    ]
    if "before" in q:
        messages = [m for m in messages if m.id < int(q["before"])]
    if "after" in q:
        after = [m for m in messages if m.id > int(q["after"])][:limit]
        return json_response([bot_view(request, m) for m in reversed(after)])
    if "around" in q:
        around = int(q["around"])
        older = [m for m in messages if m.id <= around][-(limit // 2 + 1) :]
        newer = [m for m in messages if m.id > around][: limit - len(older)]
        messages = older + newer
    return json_response([bot_view(request, m) for m in reversed(messages[-limit:])])


@routes.patch("/channels/{channel_id:\\d+}/messages/{message_id:\\d+}")
async def edit_message(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    require(request, channel)
    m = message_or_404(request, channel)
    body = await body_of(request)
    if m.author.id != double.world.bot.id or m.webhook_id is not None:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    validate_message(body, creating=False)
    before = (m.content, m.embeds, m.attachments)
    apply_message_body(request, m, body)
    if (m.content, m.embeds, m.attachments) != before:
        m.edited_at = dt.datetime.now(dt.UTC)
    double.publish_update(m)
    return json_response(bot_view(request, m))


@routes.delete("/channels/{channel_id:\\d+}/messages/{message_id:\\d+}")
async def delete_message(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    m = message_or_404(request, channel)
    if m.author.id != double.world.bot.id or m.webhook_id is not None:
        require(request, channel, Perm.MANAGE_MESSAGES)
    double.publish_delete(m)
    return no_content()


@routes.post("/channels/{channel_id:\\d+}/typing")
async def trigger_typing(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    require(request, channel, Perm.SEND_MESSAGES)
    double.emit_typing(channel, double.world.bot.id)
    return no_content()


# -- reactions -----------------------------------------------------------------------------

REACTION = "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}/reactions/{emoji}"


@routes.put(REACTION + "/@me")
async def add_reaction(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    require(request, channel, Perm.READ_MESSAGE_HISTORY, Perm.ADD_REACTIONS)
    m = message_or_404(request, channel)
    emoji = request.match_info["emoji"]
    users = m.reactions.setdefault(emoji, [])
    if double.world.bot.id not in users:
        users.append(double.world.bot.id)
        double.emit_reaction("MESSAGE_REACTION_ADD", m, double.world.bot.id, emoji)
        double._notify()
    return no_content()


@routes.delete(REACTION + "/{user}")
async def remove_reaction(request: web.Request) -> web.Response:
    double = double_of(request)
    channel = channel_or_404(request)
    m = message_or_404(request, channel)
    who = request.match_info["user"]
    user_id = double.world.bot.id if who == "@me" else int(who)
    if user_id != double.world.bot.id:
        require(request, channel, Perm.MANAGE_MESSAGES)
    emoji = request.match_info["emoji"]
    if user_id in m.reactions.get(emoji, []):
        m.reactions[emoji].remove(user_id)
        double.emit_reaction("MESSAGE_REACTION_REMOVE", m, user_id, emoji)
        double._notify()
    return no_content()


@routes.get(REACTION)
async def get_reactions(request: web.Request) -> web.Response:
    world = double_of(request).world
    channel = channel_or_404(request)
    m = message_or_404(request, channel)
    users = m.reactions.get(request.match_info["emoji"], [])
    return json_response([payloads.user(world.users[u]) for u in users])


# -- threads, DMs, guilds -------------------------------------------------------------------


@routes.post("/channels/{channel_id:\\d+}/threads")
@routes.post("/channels/{channel_id:\\d+}/messages/{message_id:\\d+}/threads")
async def create_thread(request: web.Request) -> web.Response:
    double = double_of(request)
    parent = channel_or_404(request)
    require(request, parent, Perm.CREATE_PUBLIC_THREADS)
    body = await body_of(request)
    private = body.get("type") == ChannelType.PRIVATE_THREAD
    thread = double.create_thread(parent, str(body.get("name", "thread")), private=private)
    return json_response(payloads.channel(thread, double.world), 201)


@routes.put("/channels/{channel_id:\\d+}/thread-members/@me")
async def join_thread(request: web.Request) -> web.Response:
    channel_or_404(request)
    return no_content()


@routes.post("/users/@me/channels")
async def create_dm(request: web.Request) -> web.Response:
    double = double_of(request)
    body = await body_of(request)
    user = double.world.users.get(int(body.get("recipient_id", 0)))
    if user is None:
        raise errors.unknown("User", 10013)
    return json_response(payloads.channel(double.dm_channel(user), double.world))


@routes.get("/guilds/{guild_id:\\d+}")
async def get_guild(request: web.Request) -> web.Response:
    world = double_of(request).world
    guild = world.guilds.get(int(request.match_info["guild_id"]))
    if guild is None or world.bot.id not in guild.member_ids:
        raise errors.unknown("Guild", errors.UNKNOWN_GUILD)
    return json_response(payloads.guild(guild, world, with_members=False))


@routes.get("/guilds/{guild_id:\\d+}/members/{user_id:\\d+}")
async def get_member(request: web.Request) -> web.Response:
    world = double_of(request).world
    member = world.member(int(request.match_info["guild_id"]), int(request.match_info["user_id"]))
    if member is None:
        raise errors.unknown("Member", 10007)
    return json_response(payloads.member(member))
