"""More of the bot as users see it: the story list, a failed turn with its Retry button, and a
story played in a thread (the real discord.py client against the Discord double, the real
openai client against the LLM double)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot import answers, discord_sink, render
from engine.results import Post, Recap
from tests.discord_double import DiscordDouble, Perm
from tests.engine_support import eventually
from tests.llm_double import LLMDouble
from tests.test_bot import MIRA_AVATAR, WAIT, start_story, world


async def test_story_list_shows_titles_and_summaries(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        listed = await w.command(w.guest, "story", {}, "list")
        await asyncio.wait_for(listed.wait_response(), WAIT)
        assert listed.original is not None
        shown = str(listed.original.embeds)
        assert "The Drowned Inn" in shown
        assert "A storm traps travellers" in shown
        choices = await discord_double.autocomplete(
            w.mod, w.channel, "story", {"story": "drow"}, "story", subcommand="start"
        )
        assert [c["value"] for c in choices] == ["inn"]
        await w.command(w.mod, "story", {"story": "inn"}, "start")
        await w.command(w.alice, "join", {"character": "ash"})
        await w.seen(lambda m: "joins as **Ash**" in m.content)
        suggested = await discord_double.autocomplete(
            w.guest, w.channel, "join", {"character": ""}, "character"
        )
        assert [c["name"] for c in suggested] == ["Rowan"]  # Ash is taken


def retry_button(notice: Any) -> dict[str, Any]:
    """The one button under a failed turn's notice."""
    [row] = notice.message.components
    [button] = row["components"]
    return dict(button)


async def test_failed_turn_says_so_with_a_retry_button_that_works(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.fail("scene", "500")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "I knock twice.")
        notice = await w.seen(lambda m: m.is_bot and "could not continue" in m.content)
        assert notice.message.content.endswith(
            "Your messages are kept. Press Retry or use /retry to try again."
        )
        button = retry_button(notice)
        assert button["label"] == "Retry"
        assert notice.message.allowed_mentions == {"parse": []}
        llm_server.reply("scene", "Mira: Come in, then.")
        await discord_double.press_button(w.bob, notice.message, button["custom_id"])
        mira = await w.seen(lambda m: m.author_name == "Mira" and m.content == "Come in, then.")
        assert mira.avatar_url == MIRA_AVATAR
        assert "Ash: I knock twice." in llm_server.calls("scene")[-1].prompt


async def test_the_retry_button_of_a_turn_taken_back_does_nothing(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Come in.")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "I knock.")
        await w.seen(lambda m: m.content == "Come in.")
        llm_server.fail("scene", "500")
        await discord_double.user_sends(w.alice, w.channel, "I knock again.")
        notice = await w.seen(lambda m: m.is_bot and "could not continue" in m.content)
        undone = await w.command(w.alice, "undo")  # takes back the failed turn 2
        await discord_double.wait_for_message(
            lambda m: "Turn 2 was taken back" in m.content, timeout=WAIT, channel=w.channel
        )
        assert undone.original is not None
        calls = len(llm_server.calls("scene"))
        button = retry_button(notice)
        pressed = await discord_double.press_button(w.bob, notice.message, button["custom_id"])
        await eventually(lambda: "There is no failed turn" in w.reply_text(pressed))
        assert len(llm_server.calls("scene")) == calls  # turn 1 was not written again
        assert not [m for m in discord_double.read_channel(w.channel) if m.message.components]


async def test_a_story_in_a_thread_speaks_through_the_parent_webhook(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Narrator: The thread is quiet.\nMira: Over here.")
    async with world(tmp_path, discord_double, llm_server) as w:
        thread = discord_double.create_thread(w.channel, "side quest")
        await asyncio.sleep(0.1)  # THREAD_CREATE reaches the bot

        async def run(user: object, name: str, options: dict[str, str], sub: str | None) -> None:
            await discord_double.run_slash_command(
                user,  # type: ignore[arg-type]
                thread,
                name,
                options,
                subcommand=sub,
                bypass_default_permissions=True,
                timeout=WAIT,
            )

        await run(w.mod, "story", {"story": "inn"}, "start")
        await discord_double.wait_for_message(
            lambda m: "Rain hammers" in m.content, timeout=WAIT, channel=thread
        )
        await run(w.alice, "join", {"character": "ash"}, None)
        await discord_double.wait_for_message(
            lambda m: "joins as" in m.content, timeout=WAIT, channel=thread
        )
        await discord_double.user_sends(w.alice, thread, "Hello?")
        mira = await discord_double.wait_for_message(
            lambda m: m.author_name == "Mira" and m.content == "Over here.",
            timeout=WAIT,
            channel=thread,
        )
        assert mira.webhook_id is not None and mira.avatar_url == MIRA_AVATAR
        assert [m.content for m in discord_double.read_channel(w.channel)] == []


async def test_server_config_gm_role_and_log_channel(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: The bolt slides home.")
    llm_server.reply("director", json.dumps({"flags": [{"name": "door_barred", "value": True}]}))
    async with world(tmp_path, discord_double, llm_server) as w:
        guild = discord_double.world.guilds[w.channel.guild_id]
        logs = discord_double.create_channel(guild, "gm-log")
        keepers = discord_double.create_role(guild, "Story keepers", 0)
        discord_double.give_role(guild, w.guest, keepers)
        refused = await w.command(w.guest, "gm", {}, "flag list")
        assert "Only moderators" in w.reply_text(refused)
        options = {"gm_role": keepers, "log_channel": logs, "show_changes": False}
        shown = await w.command(w.mod, "gm", options, "config")
        assert f"Log channel: <#{logs.id}>" in w.reply_text(shown)
        allowed = await w.command(w.guest, "gm", {}, "flag list")  # the GM role is enough now
        assert "No story is running" in w.reply_text(allowed)

        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "Bar the door!")
        logged = await discord_double.wait_for_message(
            lambda m: "door_barred" in m.content, timeout=WAIT, channel=logs
        )
        assert logged.content.startswith(f"<#{w.channel.id}> turn 1")
        assert logged.message.allowed_mentions == {"parse": []}
        await w.seen(lambda m: m.content == "The bolt slides home.")
        assert not [m for m in discord_double.read_channel(w.channel) if "~ flag" in m.content]

        reset = await w.command(w.mod, "gm", {"reset": "gm_role"}, "config")
        assert "GM role: none" in w.reply_text(reset)
        again = await w.command(w.guest, "gm", {}, "flag list")
        assert "Only moderators" in w.reply_text(again)


async def test_gm_arc_reopen_takes_the_arc_back_or_says_why_not(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        opened = await w.command(w.mod, "gm", {"name": "door_open", "value": "true"}, "flag set")
        assert "episode Escape the Storm / The Cellar Door: active -> completed" in w.reply_text(
            opened
        )
        where = {"arc": "escape", "episode": "the_door"}
        refused = await w.command(w.guest, "gm", where, "arc reopen")
        assert "Only moderators" in w.reply_text(refused)
        # Its goal still holds: the engine's reason is shown, privately, and nothing changes.
        held = await w.command(w.mod, "gm", where, "arc reopen")
        assert held.original is not None and held.original.flags & 64
        assert "Escape the Storm / The Cellar Door would be completed again at once" in (
            w.reply_text(held)
        )
        assert "`flag.door_open` still holds" in w.reply_text(held)
        await w.command(w.mod, "gm", {"name": "door_open"}, "flag unset")
        reopened = await w.command(
            w.mod, "gm", {"arc": "Escape the Storm", "episode": "The Cellar Door"}, "arc reopen"
        )
        assert reopened.original is not None and reopened.original.flags & 64
        assert reopened.original.allowed_mentions == {"parse": []}
        assert w.reply_text(reopened).splitlines() == [
            "~ episode Escape the Storm / The Cellar Door: completed -> active: by a moderator",
            "~ episode Escape the Storm / Below: active -> locked: "
            "the arc went back to The Cellar Door",
        ]
        status = w.reply_text(await w.command(w.mod, "gm", {}, "arc status"))
        assert "**Escape the Storm** (`escape`): active" in status
        assert "• The Cellar Door (`the_door`): active" in status
        assert "• Below (`below`): locked" in status
        again = await w.command(w.mod, "gm", where, "arc reopen")
        assert "Escape the Storm / The Cellar Door is already active." in w.reply_text(again)


async def test_typing_shows_while_a_slow_turn_is_written_and_stops_after(
    tmp_path: Path,
    discord_double: DiscordDouble,
    llm_server: LLMDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord_sink, "TYPING_EVERY", 0.1)  # Discord's ~10 s, shortened
    llm_server.reply("scene", "Mira: Finally.")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)

        def typing() -> int:
            return sum(1 for where, who in discord_double.typing if where == w.channel.id)

        llm_server.latency = 0.6
        await discord_double.user_sends(w.alice, w.channel, "Well?")
        await w.seen(lambda m: m.content == "Finally.")
        during = typing()
        assert during >= 2  # renewed while the model was slow
        await asyncio.sleep(0.4)
        assert typing() == during  # and stopped with the turn


async def test_a_name_the_webhook_refuses_is_posted_by_the_bot(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Sit.\n\nNarrator: The fire pops.")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        # As Discord answers a webhook post whose username it refuses ("Clyde", "Discord").
        discord_double.server_error("POST", r"/webhooks/\d+/.+", status=400)
        await discord_double.user_sends(w.alice, w.channel, "Hello.")
        shown = await w.seen(lambda m: m.content == "**Mira:** Sit.")
        assert shown.is_bot and shown.webhook_id is None
        await w.seen(lambda m: m.content == "The fire pops.")


async def test_undo_and_retry_take_the_old_posts_away(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: First try.", "Mira: Second try.", "Mira: Third try.")
    director = {"relationships": [{"source": "mira", "target": "ash", "trust": 0.1}]}
    llm_server.set_default("director", json.dumps(director))
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)

        def from_mira() -> list[str]:
            return [m.content for m in discord_double.read_channel(w.channel) if m.webhook_id]

        def change_lines() -> int:
            return sum("~ trust" in m.content for m in discord_double.read_channel(w.channel))

        await discord_double.user_sends(w.alice, w.channel, "Hello.")
        await w.seen(lambda m: m.content == "First try.")
        await w.seen(lambda m: "~ trust" in m.content)
        retried = await w.command(w.bob, "retry")
        await asyncio.wait_for(retried.wait_response(), WAIT)
        await w.seen(lambda m: m.content == "Second try.")
        assert "Turn 1 written again." in w.reply_text(retried)
        await w.seen(lambda m: "~ trust" in m.content)
        assert [t for t in from_mira() if "try" in t] == ["Second try."]
        assert change_lines() == 1
        undone = await w.command(w.alice, "undo")
        await discord_double.wait_for_message(
            lambda m: "Turn 1 was taken back" in m.content, timeout=WAIT, channel=w.channel
        )
        assert undone.original is not None
        assert [t for t in from_mira() if "try" in t] == []
        assert change_lines() == 0
        await discord_double.user_sends(w.alice, w.channel, "Hello again.")
        await w.seen(lambda m: m.content == "Third try.")
        assert [t for t in from_mira() if "try" in t] == ["Third try."]


async def test_a_full_queue_says_so_to_the_player(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        llm_server.latency = 1.5  # the first turn is slow; everything else has to wait
        await discord_double.user_sends(w.alice, w.channel, "One.")
        for _ in range(200):
            if llm_server.calls("scene"):
                break
            await asyncio.sleep(0.02)
        for number in range(21):  # the engine keeps at most 20 inputs waiting per channel
            await discord_double.user_sends(w.bob, w.channel, f"Again {number}.")
        busy = await w.seen(lambda m: m.is_bot and "The story is busy" in m.content)
        assert busy.message.message_reference is not None  # a reply to the refused message

        def acknowledged() -> int:
            shown = discord_double.read_channel(w.channel)
            return sum(1 for m in shown if m.content.startswith("Again") and m.reactions)

        for _ in range(200):  # reactions come from concurrent handlers
            if acknowledged() == 20:
                break
            await asyncio.sleep(0.02)
        assert acknowledged() == 20


async def test_webhook_deleted_while_a_post_streams_the_post_still_arrives(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    line = "Ah.\nThe lamp catches, and the shadows climb the walls, slow as smoke."
    llm_server.reply("scene", f"Mira: {line}")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        llm_server.chunk_size = 8
        llm_server.chunk_delay = 0.15
        await discord_double.user_sends(w.alice, w.channel, "I light the lamp.")
        half = await w.seen(lambda m: m.author_name == "Mira")
        assert half.content != line and half.webhook_id is not None
        discord_double.delete_webhook(half.webhook_id)
        final = await w.seen(lambda m: m.author_name == "Mira" and m.content == line)
        assert final.webhook_id not in (None, half.webhook_id)
        # The half post could not be finished through its webhook: with Manage Messages the
        # bot deletes it, so the post shows once.
        mira = [
            m.content for m in discord_double.read_channel(w.channel) if m.author_name == "Mira"
        ]
        assert mira == [line]


async def test_manage_webhooks_granted_later_gives_characters_their_own_voice(
    tmp_path: Path,
    discord_double: DiscordDouble,
    llm_server: LLMDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord_sink, "WEBHOOK_RECHECK", 0.0)  # 5 minutes, shortened
    llm_server.reply("scene", "Mira: Sit.", "Mira: Better.")
    without = Perm.BOT_DEFAULT & ~Perm.MANAGE_WEBHOOKS
    async with world(tmp_path, discord_double, llm_server, bot_permissions=without) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "Hi.")
        await w.seen(lambda m: m.content == "**Mira:** Sit.")
        discord_double.set_overwrite(
            w.channel, discord_double.world.bot, allow=Perm.MANAGE_WEBHOOKS
        )
        await discord_double.user_sends(w.alice, w.channel, "Hi again.")
        better = await w.seen(lambda m: m.content == "Better.")
        assert better.author_name == "Mira" and better.webhook_id is not None
        told = [m for m in discord_double.read_channel(w.channel) if "Manage Webhooks" in m.content]
        assert len(told) == 1


async def test_user_errors_of_commands_that_may_defer_stay_private(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        no_story = await w.command(w.alice, "undo")
        assert "No story is running" in w.reply_text(no_story)
        await start_story(w)
        taken = await w.command(w.guest, "join", {"character": "ash"})
        assert "Ash is already played by alice" in w.reply_text(taken)
        again = await w.command(w.mod, "story", {"story": "inn"}, "start")
        nothing = await w.command(w.alice, "undo")
        assert "no turn to take back" in w.reply_text(nothing)
        for invocation in (no_story, taken, again, nothing):
            assert invocation.original is not None and invocation.original.flags & 64
        public = [m.content for m in discord_double.read_channel(w.channel, as_user=w.bob)]
        assert not [t for t in public if "already" in t or "No story" in t or "no turn" in t]


async def test_slow_commands_are_deferred_and_answered_after(
    tmp_path: Path,
    discord_double: DiscordDouble,
    llm_server: LLMDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answers, "DEFER_AFTER", 0.0)  # every engine call counts as slow
    async with world(tmp_path, discord_double, llm_server) as w:
        start = await w.command(w.mod, "story", {"story": "inn"}, "start")
        assert start.response_type == 5  # deferred: "Dreamwalkers is thinking..."
        await w.seen(lambda m: "The Drowned Inn** begins" in m.content and not m.loading)
        join = await w.command(w.alice, "join", {"character": "ash"})
        assert join.response_type == 5
        await w.seen(lambda m: "alice joins as **Ash**" in m.content and not m.loading)


async def test_an_error_after_a_public_deferral_is_still_private(
    tmp_path: Path,
    discord_double: DiscordDouble,
    llm_server: LLMDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answers, "DEFER_AFTER", 0.0)  # the engine's answer comes "late"
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        nothing = await w.command(w.alice, "undo")
        assert nothing.response_type == 5  # a public "thinking…" first
        await eventually(lambda: nothing.followups)
        [said] = nothing.followups
        assert "no turn to take back" in said.content
        assert said.flags & 64  # only alice sees it
        assert nothing.original is not None and nothing.original.deleted
        public = [m.content for m in discord_double.read_channel(w.channel, as_user=w.bob)]
        assert not [t for t in public if "no turn" in t]


async def test_an_unexpected_error_is_logged_and_answered_briefly(
    tmp_path: Path,
    discord_double: DiscordDouble,
    llm_server: LLMDouble,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)

        async def broken(channel_id: int) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(w.bot.engine, "scene", broken)
        with caplog.at_level(logging.ERROR, logger="bot.tree"):
            look = await w.command(w.alice, "look")
        assert look.original is not None and look.original.flags & 64
        assert "Something went wrong" in look.original.content
        assert "disk on fire" not in look.original.content
        [record] = [r for r in caplog.records if r.name == "bot.tree"]
        assert record.exc_info is not None and "disk on fire" in str(record.exc_info[1])


async def test_ending_the_story_mid_reply_stops_it_and_takes_the_half_post_away(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Ah.\nThe lamp catches, and the shadows climb the walls.")
    llm_server.fail("scene", "stall", after_chunks=2)  # never finishes on its own
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "I light the lamp.")
        half = await w.seen(lambda m: m.author_name == "Mira")
        assert half.webhook_id is not None
        ended = await w.command(w.mod, "story", {}, "end")
        await asyncio.wait_for(ended.wait_response(), WAIT)
        await w.seen(lambda m: m.is_bot and "turn being written was stopped" in m.content)
        # The half post is deleted, and the reply never goes on to the director.
        await eventually(
            lambda: not any(m.author_name == "Mira" for m in discord_double.read_channel(w.channel))
        )
        assert llm_server.calls("director") == []


async def test_a_post_still_being_sent_when_the_story_ends_is_taken_away_too(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Ah.\nThe lamp catches, and the shadows climb the walls.")
    llm_server.fail("scene", "stall", after_chunks=2)
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        # Discord creates Mira's first post, but its answer is slow to come back.
        hold = discord_double.hold_answers("POST", r"^/webhooks/\d+/[^/]+$")
        await discord_double.user_sends(w.alice, w.channel, "I light the lamp.")
        await asyncio.wait_for(hold.reached.wait(), WAIT)
        await w.seen(lambda m: m.author_name == "Mira")
        ended = await w.command(w.mod, "story", {}, "end")
        await asyncio.wait_for(ended.wait_response(), WAIT)
        hold.release()
        await w.seen(lambda m: m.is_bot and "turn being written was stopped" in m.content)
        await eventually(
            lambda: not any(m.author_name == "Mira" for m in discord_double.read_channel(w.channel))
        )


async def test_recap_tells_what_happened(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Come in, then.")
    llm_server.reply("director", json.dumps({"summary": "Ash knocked; Mira let him in."}))
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "I knock twice.")
        await w.seen(lambda m: m.content == "Come in, then.")
        recap = await w.command(w.bob, "recap")
        await asyncio.wait_for(recap.wait_response(), WAIT)
        assert recap.original is not None
        assert "After 1 turn:" in recap.original.content
        assert "• (turn 1) Ash knocked; Mira let him in." in recap.original.content
        assert "**Mira:** Come in, then." in recap.original.content


def test_a_long_recap_keeps_the_newest_turns_and_the_last_posts() -> None:
    summaries = tuple(f"(turn {n}) " + "Something long happened. " * 6 for n in range(17, 48))
    recent = tuple(Post("Mira", f"Line {n}. " + "word " * 100) for n in range(10))
    recap = Recap(47, summaries, recent, chapters=("(turns 1-16) The start.",))
    text = render.recap_message(recap)
    assert len(text) <= 2000
    assert "(turns 1-16) The start." in text
    assert "(turn 47)" in text and "(turn 17)" not in text  # the oldest summaries give way
    assert all(f"**Mira:** Line {n}." in text for n in range(6, 10))  # the last four posts
