"""A large bot split over processes (design §9): two `python -m bot run` processes, each
running one of two shards (DISCORD_SHARD_COUNT, DISCORD_SHARDS) on one database. Each server's
channels are played by the process of its shard, and after a crash each process answers only
its own servers' waiting input, so nothing is answered twice."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.discord_double import DiscordDouble, Guild
from tests.llm_double import LLMDouble
from tests.test_bot_process import WAIT, scene, start_bot, story_with_a_player

SHARDS = 2


async def guild_on_shard(double: DiscordDouble, shard: int) -> Guild:
    """A new server whose id puts it on `shard` (Discord's rule: (id >> 22) % shards)."""
    while True:
        guild = double.create_guild(f"Guild {shard}")
        if (guild.id >> 22) % SHARDS == shard:
            return guild
        await asyncio.sleep(0.002)  # the next snowflake's millisecond


async def start_shards(
    tmp_path: Path, double: DiscordDouble, llm: LLMDouble, guilds: list[Guild]
) -> list[asyncio.subprocess.Process]:
    return [
        await start_bot(
            tmp_path,
            double,
            llm,
            guild,
            DISCORD_SHARD_COUNT=str(SHARDS),
            DISCORD_SHARDS=str(shard),
        )
        for shard, guild in enumerate(guilds)
    ]


async def wait_until_all_online(
    double: DiscordDouble, guilds: list[Guild], processes: list[asyncio.subprocess.Process]
) -> None:
    """Until every process has synced its server's commands and identified on the gateway;
    fails at once when one of them exits meanwhile."""
    for _ in range(1200):
        if any(process.returncode is not None for process in processes):
            raise AssertionError("a shard process exited before all came online")
        synced = all(
            double.requests_to("PUT", rf"/applications/\d+/guilds/{g.id}/commands") for g in guilds
        )
        if synced and len(double.gateway.identifies) >= len(guilds):
            await asyncio.sleep(0.3)  # READY and GUILD_CREATE reach the bots
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the shard processes never all came online")


async def stop(processes: list[asyncio.subprocess.Process], sig: int) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(sig)
    for process in processes:
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
        assert "Traceback" not in err.decode(), err.decode()[-3000:]


async def test_two_shard_processes_each_play_their_servers_and_recover_only_those(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guilds = [await guild_on_shard(discord_double, shard) for shard in range(SHARDS)]
    scenes = [scene(discord_double, guild) for guild in guilds]
    processes = await start_shards(tmp_path, discord_double, llm_server, guilds)
    try:
        try:
            await wait_until_all_online(discord_double, guilds, processes)
        except AssertionError as error:
            codes = [process.returncode for process in processes]  # (None: still running)
            for process in processes:
                if process.returncode is None:
                    process.kill()
            logs = [(await process.communicate())[1].decode()[-3000:] for process in processes]
            raise AssertionError(f"{error}; exit codes {codes}; stderr: {logs}") from None
        for _, channel, mod, alice in scenes:
            await story_with_a_player(discord_double, channel, mod, alice, processes)
        # Each shard's process saw only its own server.
        shards = sorted(i["shard"] for i in discord_double.gateway.identifies)
        assert shards == [[0, SHARDS], [1, SHARDS]]

        llm_server.latency = 30.0  # both turns hang in the model until the crash
        for n, (_, channel, _, alice) in enumerate(scenes):
            await discord_double.user_sends(alice, channel, f"I light lamp {n}.")
        for _ in range(600):
            if len(llm_server.calls("scene")) == SHARDS:
                break
            await asyncio.sleep(0.05)
        assert len(llm_server.calls("scene")) == SHARDS
    finally:
        await stop(processes, signal.SIGKILL)

    llm_server.latency = 0.0
    llm_server.set_default("scene", "Narrator: The lamp catches.")
    restarted = await start_shards(tmp_path, discord_double, llm_server, guilds)
    try:
        for _, channel, _, _ in scenes:
            await discord_double.wait_for_message(
                lambda m, c=channel: m.channel_id == c.id and m.content == "The lamp catches.",
                timeout=WAIT,
            )
        await asyncio.sleep(1.0)  # a second answer would be under way by now
        for _, channel, _, _ in scenes:
            answers = [
                m for m in discord_double.read_channel(channel) if m.content == "The lamp catches."
            ]
            assert len(answers) == 1
        resumed = [call.prompt for call in llm_server.calls("scene")[SHARDS:]]
        assert len(resumed) == SHARDS
    finally:
        await stop(restarted, signal.SIGTERM)
