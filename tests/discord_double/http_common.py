"""HTTP plumbing shared by the REST routes: JSON responses, request bodies, middleware.

The middleware records every request, injects faults on demand, checks the bot token,
adds Discord's rate-limit headers and turns :class:`ApiError` into Discord's error JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .errors import ApiError

if TYPE_CHECKING:
    from .double import DiscordDouble

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Routes authenticated by the token in the URL, not the bot token (webhooks, interactions).
TOKEN_ROUTE = re.compile(r"^/(webhooks/\d+/[^/]+|interactions/\d+/[^/]+/callback)")


DOUBLE_KEY: web.AppKey[Any] = web.AppKey("discord_double")
# Per-request storage of the parsed body and uploaded files (aiohttp >= 3.12 has RequestKey).
_Key: Any = getattr(web, "RequestKey", None)
BODY: Any = _Key("discord_double_body", dict) if _Key else "discord_double_body"
FILES: Any = _Key("discord_double_files", list) if _Key else "discord_double_files"


def double_of(request: web.Request) -> DiscordDouble:
    return request.app[DOUBLE_KEY]  # type: ignore[no-any-return]


def add_api_routes(app: web.Application, routes: web.RouteTableDef) -> None:
    """Mount a table of routes under ``/api/v10``."""
    for route in routes:
        assert isinstance(route, web.RouteDef)
        app.router.add_route(route.method, API_PREFIX + route.path, route.handler)


def json_response(data: Any, status: int = 200) -> web.Response:
    """Discord answers ``Content-Type: application/json`` exactly, with no charset."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def no_content() -> web.Response:
    return web.Response(status=204)


@dataclass
class RecordedRequest:
    """One request as the double saw it; ``json`` is the JSON body or multipart payload_json."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


class _MatchesRequests:
    """The next `remaining` requests with `method` (or any, "*") and a path `path` finds."""

    method: str
    path: re.Pattern[str]
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.path.search(path))


@dataclass
class Hold(_MatchesRequests):
    """The next `remaining` requests matching are carried out, but their answers wait until
    `release()`: as when Discord has created a message and the reply is still on its way."""

    method: str
    path: re.Pattern[str]
    remaining: int
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Fault(_MatchesRequests):
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float = 0.0
    is_global: bool = False
    scope: str = "user"


async def body_of(request: web.Request) -> dict[str, Any]:
    """The request's JSON body (or multipart ``payload_json`` plus uploaded files)."""
    if BODY in request:
        return request[BODY]  # type: ignore[no-any-return]
    body: dict[str, Any] = {}
    files: list[tuple[str, str, bytes]] = []
    if request.content_type == "application/json":
        raw = await request.read()
        body = json.loads(raw) if raw else {}
    elif request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            elif part.filename:
                files.append((part.name or "", part.filename, bytes(await part.read())))
    request[BODY] = body if isinstance(body, dict) else {"_": body}
    request[FILES] = files
    return request[BODY]  # type: ignore[no-any-return]


def _bucket_headers(request: web.Request, remaining: int) -> dict[str, str]:
    route = request.match_info.route
    template = route.resource.canonical if route.resource is not None else request.path
    bucket = hashlib.sha1(f"{request.method} {template}".encode(), usedforsecurity=False)
    reset_after = 1.0
    return {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket.hexdigest()[:32],
    }


def _fault_response(request: web.Request, fault: Fault) -> web.Response:
    if fault.status != 429:
        return json_response({"message": "500: Internal Server Error", "code": 0}, fault.status)
    body = {
        "message": "You are being rate limited.",
        "retry_after": fault.retry_after,
        "global": fault.is_global,
    }
    response = json_response(body, 429)
    response.headers.update(_bucket_headers(request, 0))
    response.headers["X-RateLimit-Reset-After"] = f"{fault.retry_after:.3f}"
    response.headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
    response.headers["X-RateLimit-Scope"] = "global" if fault.is_global else fault.scope
    if fault.is_global:
        response.headers["X-RateLimit-Global"] = "true"
    response.headers["Via"] = "1.1 google"
    return response


@web.middleware
async def discord_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)  # the gateway websocket and attachment downloads
    double = double_of(request)
    path = request.path.removeprefix(API_PREFIX)
    record = RecordedRequest(request.method, path, dict(request.query), None)
    record.headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    double.requests.append(record)
    try:
        if request.can_read_body:
            record.json = await body_of(request)
            record.files = [name for _, name, _ in request.get(FILES, [])]
        fault = next((f for f in double.faults if f.matches(request.method, path)), None)
        if fault is not None:
            fault.remaining -= 1
            response: web.StreamResponse = _fault_response(request, fault)
        else:
            _check_auth(request, path, double.world.bot_token)
            response = await handler(request)
            response.headers.update(_bucket_headers(request, 4))
            hold = next((h for h in double.holds if h.matches(request.method, path)), None)
            if hold is not None:
                hold.remaining -= 1
                hold.reached.set()
                await hold.released.wait()
    except ApiError as exc:
        response = json_response(exc.body, exc.status)
    except web.HTTPNotFound:
        response = json_response({"message": "404: Not Found", "code": 0}, 404)
    except web.HTTPMethodNotAllowed:
        response = json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
    record.status = response.status
    return response


def _check_auth(request: web.Request, path: str, token: str) -> None:
    if TOKEN_ROUTE.match(path) or path == "/gateway":
        return
    if request.headers.get("Authorization") != f"Bot {token}":
        raise ApiError(401, 0, "401: Unauthorized")
