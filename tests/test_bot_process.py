"""`python -m bot run` as a separate process, as a server admin runs it, pointed at the
Discord double (DISCORD_API_BASE, DISCORD_GATEWAY_URL) and the LLM double (OPENAI_BASE_URL)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.discord_double import Channel, DiscordDouble, Guild, Perm, User
from tests.engine_support import TEST_STORY
from tests.llm_double import LLMDouble

ROOT = Path(__file__).resolve().parents[1]
WAIT = 30.0


async def start_bot(
    tmp_path: Path,
    double: DiscordDouble,
    llm: LLMDouble,
    guild: Guild,
    token: str | None = None,
    **settings: str,
) -> asyncio.subprocess.Process:
    """`python -m bot run` for `guild` (its dev guild); `settings` adds variables."""
    stories = tmp_path / "stories"
    stories.mkdir(exist_ok=True)
    (stories / "inn.toml").write_text(TEST_STORY)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_", "OPENAI_", "DISCORD_", "DATABASE_", "DEV_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": token or double.token,
            "DISCORD_API_BASE": double.api_base,
            "DISCORD_GATEWAY_URL": double.gateway_url,
            "DEV_GUILD_ID": str(guild.id),
            "OPENAI_BASE_URL": llm.base_url,
            "LLM_MAX_RETRIES": "0",
            "STORIES_DIR": str(stories),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "COLLECT_WINDOW_SECONDS": "0.2",
            **settings,
        }
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def signal_bot(process: asyncio.subprocess.Process, sig: int) -> None:
    """`sig` to the bot process unless it has exited already (sending it then would raise
    ProcessLookupError over the test's own failure)."""
    if process.returncode is None:
        process.send_signal(sig)


async def fail_if_exited(processes: Sequence[asyncio.subprocess.Process]) -> None:
    """Fail at once, with its exit code and the end of its stderr, when a bot process that
    should be running has exited (rather than waiting for something it will never do)."""
    for process in processes:
        if process.returncode is not None:
            _, err = await asyncio.wait_for(process.communicate(), WAIT)
            raise AssertionError(
                f"the bot process exited ({process.returncode}): {err.decode()[-3000:]}"
            )


async def wait_until_online(
    double: DiscordDouble, sessions: int, processes: Sequence[asyncio.subprocess.Process] = ()
) -> None:
    """Until the bot has synced its commands and identified on the gateway `sessions` times
    (as on Discord, an interaction sent before the bot is online goes unanswered); fails at
    once when one of `processes` exits meanwhile."""
    for _ in range(1200):
        await fail_if_exited(processes)
        synced = double.requests_to("PUT", r"/applications/\d+/guilds/\d+/commands")
        if synced and len(double.gateway.identifies) >= sessions:
            await asyncio.sleep(0.3)  # READY and GUILD_CREATE reach the bot
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the bot never came online")


def scene(double: DiscordDouble, guild: Guild | None = None) -> tuple[Guild, Channel, User, User]:
    guild = guild or double.create_guild("Inn Guild")
    channel = double.create_channel(guild, "story")
    mods = double.create_role(guild, "Mods", Perm.MANAGE_GUILD)
    mod, alice = double.create_user("mod"), double.create_user("alice")
    double.add_member(guild, mod, roles=[mods])
    double.add_member(guild, alice)
    return guild, channel, mod, alice


async def story_with_a_player(
    double: DiscordDouble,
    channel: Channel,
    mod: User,
    alice: User,
    processes: Sequence[asyncio.subprocess.Process] = (),
) -> None:
    """Once the bot is online: the moderator starts the story and alice joins as Ash
    (`processes`: the bot's, see `wait_until_online`)."""
    await wait_until_online(double, 1, processes)
    await double.run_slash_command(
        mod, channel, "story", {"story": "inn"}, subcommand="start", timeout=10
    )
    await double.run_slash_command(alice, channel, "join", {"character": "ash"})
    await double.wait_for_message(lambda m: "joins as" in m.content, timeout=WAIT)


async def test_bot_process_plays_then_stops_cleanly(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild, channel, mod, alice = scene(discord_double)
    llm_server.reply("scene", 'Mira: "Boots off the table."')
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await story_with_a_player(discord_double, channel, mod, alice, [process])
        await discord_double.user_sends(alice, channel, "I put my boots on the table.")
        mira = await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira" and m.content == '"Boots off the table."',
            timeout=WAIT,
        )
        assert mira.webhook_id is not None
    finally:
        signal_bot(process, signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()


async def test_bot_killed_mid_turn_finishes_it_once_after_restart(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild, channel, mod, alice = scene(discord_double)
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await story_with_a_player(discord_double, channel, mod, alice, [process])
        llm_server.latency = 30.0  # the turn hangs in the LLM call until the kill
        await discord_double.user_sends(alice, channel, "I light the lamp.")
        await llm_server.wait_for_call("scene")  # the turn is waiting on the model
    finally:
        signal_bot(process, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), WAIT)

    llm_server.latency = 0.0
    llm_server.reply("scene", "Narrator: The lamp catches.")
    restarted = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await discord_double.wait_for_message(
            lambda m: m.content == "The lamp catches.", timeout=WAIT
        )
        await asyncio.sleep(1.0)
        posts = [
            m for m in discord_double.read_channel(channel) if m.content == "The lamp catches."
        ]
        assert len(posts) == 1
    finally:
        signal_bot(restarted, signal.SIGTERM)
        await asyncio.wait_for(restarted.communicate(), WAIT)


async def test_wrong_token_is_a_clear_configuration_error(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild = discord_double.create_guild("Any")
    process = await start_bot(tmp_path, discord_double, llm_server, guild, token="not-the-token")
    _, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 2
    assert "DISCORD_TOKEN was refused" in err.decode()
    assert "Traceback" not in err.decode()
