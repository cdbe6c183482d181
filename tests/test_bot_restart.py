"""`python -m bot run` as a separate process through restarts and shutdowns: killed while a
post is half streamed, a Retry button pressed after a restart, SIGTERM while a turn waits on
the model, and Discord refusing the Message Content intent."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.discord_double import DiscordDouble
from tests.llm_double import LLMDouble
from tests.test_bot_process import (
    WAIT,
    scene,
    signal_bot,
    start_bot,
    story_with_a_player,
    wait_until_online,
)

# The script is emitted a line at a time: "Ah." shows at once, the rest waits for the kill.
LINE = "Ah.\nThe lamp catches, and the shadows climb the walls, slow as smoke over water."


async def test_killed_mid_stream_leaves_no_half_post_after_restart(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild, channel, mod, alice = scene(discord_double)
    llm_server.set_default("scene", f"Mira: {LINE}")
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await story_with_a_player(discord_double, channel, mod, alice, [process])
        llm_server.chunk_size = 8
        llm_server.chunk_delay = 1.0  # the rest of the line would take ~9 s: the kill comes first
        await discord_double.user_sends(alice, channel, "I light the lamp.")
        partial = await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira", timeout=WAIT, channel=channel
        )
        assert partial.content.startswith("Ah.") and partial.content != LINE
    finally:
        signal_bot(process, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), WAIT)

    llm_server.chunk_delay = 0.0
    restarted = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira" and m.content == LINE, timeout=WAIT, channel=channel
        )
        await asyncio.sleep(1.0)  # anything more the restart would post
        from_mira = [
            m.content for m in discord_double.read_channel(channel) if m.author_name == "Mira"
        ]
        assert from_mira == [LINE]
    finally:
        signal_bot(restarted, signal.SIGTERM)
        await asyncio.wait_for(restarted.communicate(), WAIT)


async def test_retry_button_of_a_failed_turn_works_after_a_restart(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild, channel, mod, alice = scene(discord_double)
    llm_server.fail("scene", "500")
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await story_with_a_player(discord_double, channel, mod, alice, [process])
        await discord_double.user_sends(alice, channel, "I ring the bell.")
        notice = await discord_double.wait_for_message(
            lambda m: "could not continue" in m.content, timeout=WAIT, channel=channel
        )
    finally:
        signal_bot(process, signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), WAIT)

    llm_server.reply("scene", "Mira: Who rings at this hour?")
    restarted = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await wait_until_online(discord_double, 2, [restarted])
        [row] = notice.message.components
        [button] = row["components"]
        await discord_double.press_button(alice, notice.message, button["custom_id"], timeout=10)
        await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira" and m.content == "Who rings at this hour?",
            timeout=WAIT,
            channel=channel,
        )
        assert "Ash: I ring the bell." in llm_server.calls("scene")[-1].prompt
        # The button went with the retry.
        await discord_double.wait_for_message(
            lambda m: m.id == notice.id and not m.message.components, timeout=WAIT
        )
    finally:
        signal_bot(restarted, signal.SIGTERM)
        await asyncio.wait_for(restarted.communicate(), WAIT)


async def test_sigterm_mid_turn_exits_cleanly_and_the_turn_is_finished_after(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    guild, channel, mod, alice = scene(discord_double)
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await story_with_a_player(discord_double, channel, mod, alice, [process])
        llm_server.latency = 30.0
        await discord_double.user_sends(alice, channel, "I bar the door.")
        await llm_server.wait_for_call("scene")  # the turn is waiting on the model
    finally:
        signal_bot(process, signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode(), err.decode()[-3000:]

    llm_server.latency = 0.0
    llm_server.reply("scene", "Narrator: The bar drops into its brackets.")
    restarted = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await discord_double.wait_for_message(
            lambda m: m.content == "The bar drops into its brackets.", timeout=WAIT
        )
        await asyncio.sleep(0.5)
        shown = [m.content for m in discord_double.read_channel(channel)]
        assert shown.count("The bar drops into its brackets.") == 1
        assert not [text for text in shown if "could not continue" in text]
    finally:
        signal_bot(restarted, signal.SIGTERM)
        await asyncio.wait_for(restarted.communicate(), WAIT)


async def test_without_the_message_content_intent_the_process_still_plays(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    discord_double.gateway.privileged_intents_enabled = 0  # not enabled in the portal
    guild, channel, mod, alice = scene(discord_double)
    llm_server.reply("scene", "Mira: I hear you.")
    process = await start_bot(tmp_path, discord_double, llm_server, guild)
    try:
        await wait_until_online(
            discord_double, 2, [process]
        )  # refused once, then without the intent
        await discord_double.run_slash_command(
            mod, channel, "story", {"story": "inn"}, subcommand="start", timeout=10
        )
        await discord_double.run_slash_command(alice, channel, "join", {"character": "ash"})
        await discord_double.wait_for_message(lambda m: "joins as" in m.content, timeout=WAIT)
        await discord_double.user_sends(alice, channel, "Can anyone hear me?")
        await discord_double.wait_for_message(
            lambda m: "Message Content intent" in m.content, timeout=WAIT, channel=channel
        )
        await discord_double.run_slash_command(alice, channel, "say", {"text": "Hello?"})
        await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira" and m.content == "I hear you.", timeout=WAIT
        )
    finally:
        signal_bot(process, signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "Message Content intent is not enabled" in err.decode()
    assert "Traceback" not in err.decode()
