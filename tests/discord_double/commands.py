"""Application command routes: bulk overwrite (``tree.sync``) and fetch, global or guild."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .errors import ApiError
from .http_common import add_api_routes, body_of, double_of, json_response

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)


COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def validate_commands(commands: list[dict[str, Any]]) -> None:
    """Discord's checks on a bulk overwrite: names, descriptions, option counts."""
    if len(commands) > 100:
        raise ApiError(400, 30032, "Maximum number of application commands reached (100)")
    problems: dict[str, Any] = {}
    for index, cmd in enumerate(commands):
        name, bad = str(cmd.get("name", "")), {}
        chat_input = cmd.get("type", 1) == 1
        if not COMMAND_NAME.match(name) or (chat_input and name != name.lower()):
            bad["name"] = {
                "_errors": [
                    {
                        "code": "APPLICATION_COMMAND_INVALID_NAME",
                        "message": "Command name is invalid",
                    }
                ]
            }
        if chat_input and not 1 <= len(cmd.get("description") or "") <= 100:
            bad["description"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_BAD_LENGTH",
                        "message": "Must be between 1 and 100 in length.",
                    }
                ]
            }
        if len(cmd.get("options") or []) > 25:
            bad["options"] = {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}
                ]
            }
        if bad:
            problems[str(index)] = bad
    if problems:
        raise ApiError(400, 50035, "Invalid Form Body", problems)


@routes.put("/applications/{app_id:\\d+}/commands")
@routes.put("/applications/{app_id:\\d+}/guilds/{guild_id:\\d+}/commands")
async def bulk_overwrite_commands(request: web.Request) -> web.Response:
    world = double_of(request).world
    guild_id = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
    if int(request.match_info["app_id"]) != world.application_id:
        raise ApiError(403, 50001, "Missing Access")
    body = (await body_of(request)).get("_", [])
    validate_commands(body)
    previous = {c["name"]: c["id"] for c in world.commands.get(guild_id, [])}
    stored = []
    for cmd in body:
        cmd_id = previous.get(cmd["name"]) or str(world.ids.next())
        item = {"type": 1, "description": "", "options": [], **cmd}
        item.update(id=cmd_id, application_id=str(world.application_id), version=cmd_id)
        if guild_id is not None:
            item["guild_id"] = str(guild_id)
        stored.append(item)
    world.commands[guild_id] = stored
    return json_response(stored)


@routes.get("/applications/{app_id:\\d+}/commands")
@routes.get("/applications/{app_id:\\d+}/guilds/{guild_id:\\d+}/commands")
async def get_commands(request: web.Request) -> web.Response:
    world = double_of(request).world
    guild_id = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
    return json_response(world.commands.get(guild_id, []))
