"""The Discord bot end to end: the real discord.py client against the Discord double, the
real openai client against the LLM double, and what users see in the channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import DreamwalkersBot
from bot.discord_sink import DiscordSink, split_message
from engine.settings import Settings
from tests.discord_double import Channel, DiscordDouble, Perm, SeenMessage, User
from tests.engine_support import TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble

WAIT = 10.0
MIRA_AVATAR = "https://example.invalid/mira.png"


class QuickBot(DreamwalkersBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s before re-identifying; the double needs no pause


@dataclass
class World:
    double: DiscordDouble
    llm: LLMDouble
    bot: DreamwalkersBot
    channel: Channel
    alice: User
    bob: User
    mod: User
    guest: User

    async def command(
        self, user: User, name: str, options: dict[str, Any] | None = None, sub: str | None = None
    ) -> Any:
        return await self.double.run_slash_command(
            user,
            self.channel,
            name,
            options or {},
            subcommand=sub,
            bypass_default_permissions=True,
        )

    async def seen(self, predicate: Any) -> SeenMessage:
        return await self.double.wait_for_message(predicate, timeout=WAIT, channel=self.channel)

    def reply_text(self, invocation: Any) -> str:
        messages = [invocation.original, *invocation.followups]
        return "\n".join(m.content for m in messages if m is not None)


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path,
    double: DiscordDouble,
    llm: LLMDouble,
    *,
    message_content: bool = True,
    bot_permissions: int = Perm.BOT_DEFAULT,
) -> AsyncIterator[World]:
    guild = double.create_guild("Dream Guild", bot_permissions=bot_permissions)
    channel = double.create_channel(guild, "story")
    mods = double.create_role(guild, "Mods", Perm.MANAGE_GUILD)
    users = {}
    for name in ("alice", "bob", "mod", "guest"):
        users[name] = double.create_user(name)
        double.add_member(guild, users[name], roles=[mods] if name == "mod" else None)
    sink = DiscordSink()
    async with running_engine(
        tmp_path,
        llm.base_url,
        catalog_of(TEST_STORY),
        sink=sink,
        collect_window=0.3,  # type: ignore[arg-type]
    ) as (engine, _):
        bot = QuickBot(
            engine, sink, Settings(), message_content=message_content, guild_ready_timeout=0.2
        )
        async with double.running(bot):
            await bot.tree.sync()
            yield World(
                double,
                llm,
                bot,
                channel,
                users["alice"],
                users["bob"],
                users["mod"],
                users["guest"],
            )


async def start_story(w: World) -> None:
    await w.command(w.mod, "story", {"story": "inn"}, "start")
    await w.seen(lambda m: "Rain hammers" in m.content)
    await w.command(w.alice, "join", {"character": "ash"})
    await w.seen(lambda m: "joins as **Ash**" in m.content)
    await w.command(w.bob, "join", {"character": "rowan"})
    await w.seen(lambda m: "joins as **Rowan**" in m.content)


async def test_two_players_one_turn_through_webhooks(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", 'Narrator: Thunder rolls.\nMira: "Doors shut, both of you."')
    llm_server.reply(
        "director",
        json.dumps(
            {
                "summary": "Mira greets them.",
                "relationships": [{"source": "mira", "target": "ash", "trust": 0.1}],
            }
        ),
    )
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "I shake off the rain.")
        await discord_double.user_sends(w.bob, w.channel, "I bless the hearth.")
        mira = await w.seen(
            lambda m: m.author_name == "Mira" and "Doors shut" in m.content and "…" not in m.content
        )
        assert mira.webhook_id is not None
        assert mira.avatar_url == MIRA_AVATAR
        narrator = await w.seen(lambda m: m.content == "Thunder rolls.")
        assert narrator.is_bot and narrator.webhook_id is None
        changes = await w.seen(lambda m: "~ trust Mira -> Ash" in m.content)
        assert changes.is_bot
        [call] = llm_server.calls("scene")
        assert "Ash: I shake off the rain." in call.prompt
        assert "Rowan: I bless the hearth." in call.prompt
        # /look shows the scene.
        look = await w.command(w.alice, "look")
        [embed] = look.original.embeds
        assert embed["title"] == "Common Hall"
        assert "Mira" in json.dumps(embed)


async def test_moderators_and_everyone_else(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        done = await w.command(w.mod, "gm", {"name": "door_open", "value": "true"}, "flag set")
        assert "flag door_open" in w.reply_text(done)
        listed = await w.command(w.mod, "gm", {}, "flag list")
        shown = "door\\_open = true (set by a moderator before the first turn)"
        assert shown in w.reply_text(listed)
        log = await w.command(w.mod, "gm", {}, "log")
        assert "flag door\\_open: false -> true: set by a moderator" in w.reply_text(log)
        assert f"(by <@{w.mod.id}>)" in w.reply_text(log)
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("flag set", {"name": "x", "value": "1"}),
            ("flag unset", {"name": "door_open"}),
            ("flag list", {}),
            ("relationship set", {"source": "mira", "target": "ash", "trust": 0.5}),
            ("scene set", {"weather": "hail"}),
            ("character enter", {"name": "bram"}),
            ("character leave", {"name": "mira"}),
            ("arc status", {}),
            ("arc advance", {"arc": "escape", "episode": "below"}),
            ("pause", {}),
            ("resume", {}),
            ("log", {}),
            ("config", {}),
        ]
        for sub, options in attempts:
            refused = await w.command(w.guest, "gm", options, sub)
            assert refused.original is not None and refused.original.flags & 64, sub
            assert "Only moderators" in refused.original.content, sub
        still = await w.command(w.mod, "gm", {}, "flag list")
        assert "door\\_open = true" in w.reply_text(still)
        start = await w.command(w.guest, "story", {"story": "inn"}, "start")
        assert "Only moderators" in w.reply_text(start)


async def test_model_mentions_never_ping(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Listen @everyone and @here, and you <@123456789012345678>!")
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "Who's there?")
        shown = await w.seen(lambda m: "@everyone" in m.content and "…" not in m.content)
        assert shown.pinged_user_ids == []
        sent = [m for m in w.double.read_channel(w.channel) if m.is_bot or m.webhook_id]
        assert sent and all(m.message.allowed_mentions == {"parse": []} for m in sent)


async def test_webhook_deleted_and_rate_limited_still_delivers(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.set_default("scene", lambda body: "Mira: " + body["messages"][-1]["content"][-24:])
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "first")
        first = await w.seen(lambda m: m.author_name == "Mira" and m.webhook_id is not None)
        discord_double.delete_webhook(first.webhook_id)
        discord_double.rate_limit("POST", r"/webhooks/\d+/.+", retry_after=0.2)
        await discord_double.user_sends(w.alice, w.channel, "second")
        second = await w.seen(lambda m: m.author_name == "Mira" and m.id != first.id)
        assert second.webhook_id is not None and second.webhook_id != first.webhook_id
        statuses = [r.status for r in discord_double.requests_to("POST", r"/webhooks/\d+/.+")]
        assert 429 in statuses


async def test_out_of_character_and_echoes_trigger_nothing(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "(( brb, tea ))")
        await discord_double.user_sends(w.bob, w.channel, "// is this on?")
        await discord_double.user_sends(w.guest, w.channel, "just watching")  # not a player
        await asyncio.sleep(0.8)  # longer than the collect window
        assert llm_server.calls() == []
        await discord_double.user_sends(w.alice, w.channel, "I sit down.")
        await w.seen(lambda m: m.webhook_id is None and m.is_bot and "wind shifts" in m.content)
        await asyncio.sleep(0.8)
        assert len(llm_server.calls("scene")) == 1  # the bot's own posts started nothing


async def test_without_message_content_slash_commands_still_play(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    async with world(tmp_path, discord_double, llm_server, message_content=False) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "hello?")
        await discord_double.user_sends(w.alice, w.channel, "anyone?")
        notice = await w.seen(lambda m: "Message Content intent" in m.content)
        assert notice.is_bot
        await asyncio.sleep(0.5)
        told = [m for m in w.double.read_channel(w.channel) if "Message Content" in m.content]
        assert len(told) == 1
        await w.command(w.alice, "say", {"text": "Hello, innkeeper."})
        await w.seen(lambda m: "wind shifts" in m.content)
        assert "Ash: Hello, innkeeper." in llm_server.calls("scene")[0].prompt


def test_long_text_is_split_at_sentence_or_paragraph_boundaries() -> None:
    text = ("The rain keeps falling on the long road. " * 80).strip()
    pieces = split_message(text)
    assert len(pieces) > 1 and all(len(p) <= 2000 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces) == text


async def test_without_manage_webhooks_the_bot_speaks_for_characters(
    tmp_path: Path, discord_double: DiscordDouble, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Mira: Sit.")
    async with world(
        tmp_path,
        discord_double,
        llm_server,
        bot_permissions=Perm.BOT_DEFAULT & ~Perm.MANAGE_WEBHOOKS,
    ) as w:
        await start_story(w)
        await discord_double.user_sends(w.alice, w.channel, "Hi.")
        await w.seen(lambda m: "Manage Webhooks" in m.content)
        shown = await w.seen(lambda m: m.content == "**Mira:** Sit.")
        assert shown.is_bot
