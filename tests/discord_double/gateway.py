"""The gateway websocket: HELLO, heartbeats, IDENTIFY/READY, RESUME with replay, faults.

Every dispatched event gets the session's next sequence number and is kept in the session's
buffer, so a client that RESUMEs after a drop receives exactly the events it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .state import World

log = logging.getLogger(__name__)

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_WEBHOOKS = 1 << 5
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
PRIVILEGED = GUILD_MEMBERS | (1 << 8) | payloads.MESSAGE_CONTENT_INTENT

EventData = dict[str, Any] | Callable[[int], dict[str, Any]]
"""Event data, or a function of the receiving session's intents (e.g. to blank content)."""


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


@dataclass
class Session:
    id: str
    intents: int
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection | None = None
    resumes: int = 0
    shard: tuple[int, int] | None = None  # (shard id, shard count) from IDENTIFY

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session's shard gets the guild's events (Discord's rule; events of no
        guild go to shard 0)."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return shard_id == 0 if guild_id is None else (guild_id >> 22) % count == shard_id


def _guild_of(event: str, body: dict[str, Any]) -> int | None:
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        return int(body["id"])
    guild_id = body.get("guild_id")
    return int(guild_id) if guild_id else None


class Gateway:
    """Websocket endpoint plus per-session state; one instance per double."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.resume_url = ""
        self.heartbeat_interval_ms = 41_250
        self.ack_heartbeats = True
        self.privileged_intents_enabled = PRIVILEGED
        self.sessions: dict[str, Session] = {}
        self.identifies: list[dict[str, Any]] = []
        self.resume_requests: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.connections: set[Connection] = set()
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._connected = asyncio.Condition()

    # -- public controls -----------------------------------------------------------------

    @property
    def intents(self) -> int | None:
        """Intents of the most recent IDENTIFY, or None before any."""
        return self.identifies[-1]["intents"] if self.identifies else None

    def live_sessions(self) -> list[Session]:
        return list(self.sessions.values())

    def dispatch(self, event: str, data: EventData, intent: int = 0) -> None:
        for session in self.live_sessions():
            if intent and not session.intents & intent:
                continue
            body = data(session.intents) if callable(data) else data
            if session.owns(_guild_of(event, body)):
                self._send_dispatch(session, event, body)

    async def drop(self, *, code: int = 4000, hold: bool = False, abrupt: bool = False) -> None:
        """Close every gateway connection from the server side.

        ``hold=True`` keeps new connections waiting (the handshake does not finish) until
        :meth:`release`, so tests can make events happen while the bot is offline.
        """
        if hold:
            self._accepting.clear()
        for conn in list(self.connections):
            if abrupt and conn.request.transport is not None:
                conn.request.transport.close()
            else:
                await conn.ws.close(code=code, message=b"dropped by test")

    def release(self) -> None:
        self._accepting.set()

    def send_reconnect(self) -> None:
        """Op 7 RECONNECT: the client should reconnect and RESUME."""
        self._send_op(7, None)

    def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION; when not resumable the session is forgotten."""
        self._send_op(9, resumable)
        if not resumable:
            self.sessions.clear()

    async def wait_connected(self, timeout: float = 10.0) -> Session:  # noqa: ASYNC109
        """Wait until some session has a live, identified or resumed connection."""

        def current() -> Session | None:
            return next((s for s in self.sessions.values() if s.connection), None)

        async with asyncio.timeout(timeout), self._connected:
            await self._connected.wait_for(lambda: current() is not None)
        session = current()
        assert session is not None
        return session

    async def close(self) -> None:
        self._accepting.set()
        for conn in list(self.connections):
            await conn.ws.close(code=1001)

    # -- websocket handler ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self._accepting.wait()
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws, request)
        self.connections.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        session: Session | None = None
        try:
            conn.queue.put_nowait(
                {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                session = await self._on_frame(conn, frame, session)
        finally:
            self.connections.discard(conn)
            if session is not None and session.connection is conn:
                session.connection = None
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _on_frame(
        self, conn: Connection, frame: dict[str, Any], session: Session | None
    ) -> Session | None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            self.heartbeats += 1
            if self.ack_heartbeats:
                conn.queue.put_nowait({"op": 11, "d": None})
        elif op == 2:
            return await self._identify(conn, data or {})
        elif op == 6:
            return await self._resume(conn, data or {})
        elif op == 8 and session is not None:
            self._members_chunk(session, data or {})
        return session

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        self.identifies.append({"intents": data.get("intents", 0), "shard": data.get("shard")})
        if data.get("token") != self.world.bot_token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED & ~self.privileged_intents_enabled:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        session = Session(secrets.token_hex(16), intents)
        shard = data.get("shard")
        if isinstance(shard, list) and len(shard) == 2:
            session.shard = (int(shard[0]), int(shard[1]))
        self.sessions[session.id] = session
        session.connection = conn
        world = self.world
        guilds = [
            g for g in world.guilds.values() if world.bot.id in g.member_ids and session.owns(g.id)
        ]
        ready = {
            "v": 10,
            "user": payloads.user(world.bot),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {"id": str(world.application_id), "flags": (1 << 19) | (1 << 15)},
            "private_channels": [],
            "relationships": [],
        }
        if session.shard is not None:
            ready["shard"] = list(session.shard)
        self._send_dispatch(session, "READY", ready)
        with_members = bool(intents & GUILD_MEMBERS)
        for g in guilds:
            if intents & GUILDS:
                body = payloads.guild(g, world, with_members=with_members)
                self._send_dispatch(session, "GUILD_CREATE", body)
        await self._notify_connected()
        return session

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        self.resume_requests.append({"session_id": data.get("session_id"), "seq": data.get("seq")})
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.world.bot_token:
            conn.queue.put_nowait({"op": 9, "d": False})
            return None
        session.connection = conn
        session.resumes += 1
        last_seen = int(data.get("seq") or 0)
        for frame in session.buffer:
            if frame["s"] > last_seen:
                conn.queue.put_nowait(frame)
        self._send_dispatch(session, "RESUMED", {})
        await self._notify_connected()
        return session

    def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        guild = self.world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [payloads.member(m) for m in self.world.guild_members(guild)],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _notify_connected(self) -> None:
        async with self._connected:
            self._connected.notify_all()

    def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        if session.connection is not None:
            session.connection.queue.put_nowait(frame)

    def _send_op(self, op: int, data: Any) -> None:
        for conn in self.connections:
            conn.queue.put_nowait({"op": op, "d": data})

    async def _writer(self, conn: Connection) -> None:
        while True:
            frame = await conn.queue.get()
            if conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(frame))
            except ConnectionError:
                return
