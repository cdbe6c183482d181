"""`python -m bot run`: settings -> engine -> bot, and a clean shutdown on SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import discord
import yarl

from bot.app import DreamwalkersBot
from bot.discord_sink import DiscordSink
from engine.bootstrap import build_engine, close_engine
from engine.settings import Settings

log = logging.getLogger(__name__)


def point_at_discord(settings: Settings) -> None:
    """Use a Discord-compatible server instead of Discord when the settings say so."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def run_bot(settings: Settings) -> None:
    token = settings.require_discord_token()
    point_at_discord(settings)
    sink = DiscordSink()
    engine = await build_engine(settings, sink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for message_content in (True, False):
            bot = DreamwalkersBot(engine, sink, settings, message_content=message_content)
            try:
                async with bot:
                    runner = asyncio.create_task(bot.start(token))
                    stopper = asyncio.create_task(stop.wait())
                    done, _ = await asyncio.wait(
                        {runner, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    stopper.cancel()
                    if runner in done:
                        runner.result()
                    return
            except discord.PrivilegedIntentsRequired:
                log.warning(
                    "The Message Content intent is not enabled for this bot: slash commands "
                    "work, plain messages will not be read until it is enabled in the "
                    "developer portal (Bot -> Privileged Gateway Intents)."
                )
    finally:
        # Turns still running are left to finish at the next start (their input waits).
        await close_engine(engine, cancel_running=True)
        sink.close()


async def sync_commands(settings: Settings) -> int:
    """Log in, sync the command tree globally, log out."""
    token = settings.require_discord_token()
    point_at_discord(settings)
    sink = DiscordSink()
    engine = await build_engine(settings, sink)
    try:
        bot = DreamwalkersBot(engine, sink, settings, play=False)
        async with bot:
            await bot.login(token)  # runs setup_hook, which loads the commands
            return len(await bot.tree.sync())
    finally:
        await close_engine(engine)
