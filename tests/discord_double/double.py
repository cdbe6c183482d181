"""DiscordDouble: the server (REST + gateway on 127.0.0.1), its events and faults.

World-building and user actions live in ``actors.py``; interactions in ``interactions.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from . import commands, payloads, rest, webhooks
from .actors import ActorsMixin
from .gateway import DIRECT_MESSAGES, GUILD_MESSAGES, GUILD_WEBHOOKS, Gateway
from .http_common import API_PREFIX, DOUBLE_KEY, Fault, Hold, RecordedRequest, discord_middleware
from .interactions import InteractionsMixin
from .state import Message, World
from .views import SeenMessage, seen, visible_to


class DiscordDouble(ActorsMixin, InteractionsMixin):
    """A local Discord. ``await start()``, point discord.py at it with :meth:`patched`."""

    def __init__(self, *, bot_name: str = "Dreamwalkers", token: str = "test-token") -> None:
        self.world = World(bot_name=bot_name, bot_token=token)
        self.gateway = Gateway(self.world)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.files: dict[int, tuple[str, bytes]] = {}
        self.typing: list[tuple[int, int]] = []  # (channel id, user id)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        InteractionsMixin.__init__(self)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def token(self) -> str:
        return self.world.bot_token

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application(middlewares=[discord_middleware])
        app[DOUBLE_KEY] = self
        rest.setup(app)
        commands.setup(app)
        webhooks.setup(app)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway-resume", self.gateway.handle)
        app.router.add_get("/attachments/{id}/{filename}", self._attachment)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.gateway.resume_url = f"ws://127.0.0.1:{self.port}/gateway-resume"

    async def close(self) -> None:
        for hold in self.holds:
            hold.release()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway here; restore both afterwards."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    @contextlib.asynccontextmanager
    async def running(self, client: discord.Client, timeout: float = 10.0) -> AsyncIterator[None]:  # noqa: ASYNC109
        """Start ``client`` with the double's token, wait until ready, close it on exit."""
        task = asyncio.create_task(client.start(self.token))
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {task, ready}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
            if task in done:
                task.result()  # re-raise the login/connect failure
                raise RuntimeError("client stopped before it was ready")
            if ready not in done:
                raise TimeoutError(f"client not ready within {timeout}s")
            yield
        finally:
            ready.cancel()
            await asyncio.wait_for(client.close(), timeout)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)

    async def _attachment(self, request: web.Request) -> web.Response:
        name, data = self.files.get(int(request.match_info["id"]), ("", b""))
        if not name:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    # -- events ----------------------------------------------------------------------------

    def _message_intent(self, m: Message) -> int:
        return GUILD_MESSAGES if m.guild_id is not None else DIRECT_MESSAGES

    def _message_data(self, m: Message) -> Callable[[int], dict[str, Any]]:
        def build(intents: int) -> dict[str, Any]:
            full = payloads.content_visible(m, self.world, intents)
            return payloads.message(m, self.world, full_content=full)

        return build

    def publish_create(self, m: Message) -> Message:
        self.world.add_message(m)
        if m.visible_to is None:
            self.gateway.dispatch("MESSAGE_CREATE", self._message_data(m), self._message_intent(m))
        self._notify()
        return m

    def publish_update(self, m: Message) -> None:
        if m.visible_to is None:
            self.gateway.dispatch("MESSAGE_UPDATE", self._message_data(m), self._message_intent(m))
        self._notify()

    def publish_delete(self, m: Message) -> None:
        m.deleted = True
        data: dict[str, Any] = {"id": str(m.id), "channel_id": str(m.channel_id)}
        if m.guild_id is not None:
            data["guild_id"] = str(m.guild_id)
        if m.visible_to is None:
            self.gateway.dispatch("MESSAGE_DELETE", data, self._message_intent(m))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- reading what users see ---------------------------------------------------------------

    def mark(self) -> int:
        """A snowflake for 'now': pass as ``after=`` to only consider later messages."""
        return self.world.ids.next()

    def read_channel(self, channel: Any, *, as_user: Any = None) -> list[SeenMessage]:
        """The channel's messages, oldest first, as ``as_user`` (default: anyone) sees them."""
        channel_id = getattr(channel, "id", channel)
        viewer = getattr(as_user, "id", as_user)
        if viewer is not None and not self.world.permissions_in(channel_id, viewer):
            raise PermissionError(f"user {viewer} cannot view channel {channel_id}")
        messages = self.world.visible_messages(channel_id)
        return [seen(m, self.world) for m in messages if visible_to(m, viewer)]

    async def wait_for_message(
        self,
        predicate: Callable[[SeenMessage], bool] = lambda _: True,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        channel: Any = None,
        after: int = 0,
        as_user: Any = None,
    ) -> SeenMessage:
        """Wait until a message (existing or new, in its current edited state) matches."""
        channel_ids = [getattr(channel, "id", channel)] if channel is not None else None
        viewer = getattr(as_user, "id", as_user)
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for cid in channel_ids or list(self.world.channel_messages):
                    for m in self.world.visible_messages(cid):
                        if (
                            m.id > after
                            and visible_to(m, viewer)
                            and predicate(s := seen(m, self.world))
                        ):
                            return s
                await changed.wait()

    # -- faults and records ---------------------------------------------------------------

    def rate_limit(
        self,
        method: str,
        path: str,
        *,
        count: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        scope: str = "user",
    ) -> Fault:
        """The next ``count`` requests matching ``method`` and regex ``path`` get a 429."""
        fault = Fault(method, re.compile(path), 429, count, retry_after, is_global, scope)
        self.faults.append(fault)
        return fault

    def server_error(self, method: str, path: str, *, count: int = 1, status: int = 500) -> Fault:
        fault = Fault(method, re.compile(path), status, count)
        self.faults.append(fault)
        return fault

    def hold_answers(self, method: str, path: str, *, count: int = 1) -> Hold:
        """The next ``count`` matching requests take effect, but are answered only once the
        returned hold is released (``hold.reached`` is set when one arrives)."""
        hold = Hold(method, re.compile(path), count)
        self.holds.append(hold)
        return hold

    async def drop_gateway(
        self, *, code: int = 4000, hold: bool = False, abrupt: bool = False
    ) -> None:
        """Close the bot's gateway connection; with ``hold`` reconnects wait for release."""
        await self.gateway.drop(code=code, hold=hold, abrupt=abrupt)

    def release_gateway(self) -> None:
        self.gateway.release()

    def delete_webhook(self, webhook: Any) -> None:
        """Someone deletes the webhook in Discord: its URL now answers 404 Unknown Webhook."""
        hook = self.world.webhooks[int(getattr(webhook, "id", webhook))]
        hook.deleted = True
        data = {"guild_id": str(hook.guild_id), "channel_id": str(hook.channel_id)}
        self.gateway.dispatch("WEBHOOKS_UPDATE", data, GUILD_WEBHOOKS)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method (or ``*``) whose path matches regex ``path``."""
        pattern = re.compile(path)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]
