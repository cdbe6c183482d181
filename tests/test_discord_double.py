"""The Discord double, exercised by the real discord.py client (a minimal bot defined here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.discord_double import Channel, DiscordDouble, Guild, Perm, User

TIMEOUT = 5.0


class MiniBot(discord.Client):
    """A small bot: slash commands, a button view and a modal; it logs the messages it gets."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(intents=intents, guild_ready_timeout=0.2)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []
        self.resumed = asyncio.Event()
        self.readied = asyncio.Event()
        self.app_permissions = discord.Permissions.none()
        self._got_message = asyncio.Event()
        self._register()

    def _register(self) -> None:
        @self.tree.command(description="Say hello")
        async def hello(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"Hello, {name}!")

        @self.tree.command(description="Think, then answer")
        async def ponder(interaction: discord.Interaction, question: str) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0.05)
            await interaction.followup.send(f"After thought: {question}")

        @self.tree.command(description="Moderators only")
        async def purge(interaction: discord.Interaction) -> None:
            self.app_permissions = interaction.app_permissions
            if not interaction.permissions.manage_messages:
                await interaction.response.send_message("You may not.", ephemeral=True)
                return
            await interaction.response.send_message("Purged.")

        gm = app_commands.Group(name="gm", description="Moderator tools")

        @gm.command(name="flag", description="Set a story flag")
        async def flag(interaction: discord.Interaction, name: str, value: int) -> None:
            await interaction.response.send_message(f"{name} = {value}")

        @flag.autocomplete("name")
        async def flag_names(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            names = ["door_open", "lamp_lit", "map_found"]
            return [app_commands.Choice(name=n, value=n) for n in names if current in n]

        self.tree.add_command(gm)

        @self.tree.command(description="Count, editing the original response")
        async def count(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("1")
            await interaction.edit_original_response(content="2")
            original = await interaction.original_response()
            await interaction.followup.send(f"original now says {original.content}")

        @self.tree.command(description="Offer a choice")
        async def ask(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Open the door?", view=DoorView())

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before re-identifying; a test bot need not."""

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)
        self._got_message.set()

    async def on_ready(self) -> None:
        self.readied.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def next_message(
        self, predicate: Callable[[discord.Message], bool] = lambda _: True
    ) -> discord.Message:
        """The first received message matching ``predicate`` (waiting up to TIMEOUT)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for m in self.seen:
                    if predicate(m):
                        return m
                self._got_message.clear()
                await self._got_message.wait()


class NameModal(discord.ui.Modal, title="Name your character"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Name", custom_id="name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Welcome, {self.name.value}.")


class DoorView(discord.ui.View):
    @discord.ui.button(label="Open", custom_id="door:open")
    async def open(
        self, interaction: discord.Interaction, button: discord.ui.Button[DoorView]
    ) -> None:
        await interaction.response.edit_message(content="The door is open.", view=None)

    @discord.ui.button(label="Sign", custom_id="door:sign")
    async def sign(
        self, interaction: discord.Interaction, button: discord.ui.Button[DoorView]
    ) -> None:
        await interaction.response.send_modal(NameModal(custom_id="name_modal"))


@dataclass
class Scene:
    guild: Guild
    channel: Channel
    alice: User
    mod: User


def text_channel(bot: discord.Client, channel: Channel) -> discord.TextChannel:
    found = bot.get_channel(channel.id)
    assert isinstance(found, discord.TextChannel)
    return found


@pytest.fixture
def scene(discord_double: DiscordDouble) -> Scene:
    guild = discord_double.create_guild("Dream Guild")
    channel = discord_double.create_channel(guild, "story", topic="Once upon a time")
    discord_double.create_channel(guild, "ooc")
    alice = discord_double.create_user("alice", global_name="Alice")
    mod = discord_double.create_user("morgan", global_name="Morgan")
    moderators = discord_double.create_role(guild, "GM", Perm.MANAGE_MESSAGES)
    discord_double.add_member(guild, alice)
    discord_double.add_member(guild, mod, roles=[moderators], nick="Morgan the GM")
    return Scene(guild, channel, alice, mod)


async def test_login_and_ready_shows_guild_and_channels(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        guild = bot.get_guild(scene.guild.id)
        assert guild is not None and guild.name == "Dream Guild"
        assert sorted(c.name for c in guild.text_channels) == ["ooc", "story"]
        assert bot.user is not None and bot.user.name == "Dreamwalkers"
        assert guild.me.guild_permissions.manage_webhooks
        assert discord_double.gateway.intents == bot.intents.value


async def test_user_message_reaches_bot_and_bot_replies(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await discord_double.user_sends(scene.alice, scene.channel, "I open the door.")
        received = await bot.next_message()
        assert received.content == "I open the door."
        assert received.author.id == scene.alice.id
        await received.channel.send("The door creaks.")
        shown = await discord_double.wait_for_message(lambda m: m.content == "The door creaks.")
        assert shown.author_name == "Dreamwalkers"


async def test_slash_command_answered(discord_double: DiscordDouble, scene: Scene) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        guild = discord.Object(scene.guild.id)
        bot.tree.copy_global_to(guild=guild)
        await bot.tree.sync(guild=guild)  # a guild command, as during development
        inv = await discord_double.run_slash_command(
            scene.alice, scene.channel, "hello", {"name": "Ilse"}
        )
        assert await inv.wait_response() == 4
        shown = await discord_double.wait_for_message(
            lambda m: m.content == "Hello, Ilse!", channel=scene.channel
        )
        assert shown.author_name == "Dreamwalkers"
        assert not shown.ephemeral


async def test_slash_command_deferred_then_followup(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await bot.tree.sync()
        inv = await discord_double.run_slash_command(
            scene.alice, scene.channel, "ponder", {"question": "why?"}
        )
        assert await inv.wait_response() == 5
        shown = await discord_double.wait_for_message(
            lambda m: m.content == "After thought: why?", channel=scene.channel
        )
        assert not shown.loading
        # the followup replaced the "thinking…" message rather than adding a second one
        assert [m.content for m in discord_double.read_channel(scene.channel)] == [
            "After thought: why?"
        ]


async def test_command_denied_when_member_lacks_permission(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await bot.tree.sync()
        denied = await discord_double.run_slash_command(scene.alice, scene.channel, "purge")
        allowed = await discord_double.run_slash_command(scene.mod, scene.channel, "purge")
        assert await denied.wait_response() == 4 and await allowed.wait_response() == 4
        await discord_double.wait_for_message(lambda m: m.content == "Purged.")
        seen_by_alice = [
            m.content for m in discord_double.read_channel(scene.channel, as_user=scene.alice)
        ]
        seen_by_mod = [
            m.content for m in discord_double.read_channel(scene.channel, as_user=scene.mod)
        ]
        assert seen_by_alice == ["You may not.", "Purged."]  # the refusal is ephemeral
        assert seen_by_mod == ["Purged."]
        assert bot.app_permissions.manage_webhooks and not bot.app_permissions.administrator


async def test_webhook_post_with_persona_then_edit(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        hook = await channel.create_webhook(name="Dreamwalkers narrator")
        assert [h.id for h in await channel.webhooks()] == [hook.id]
        sent = await hook.send(
            "The lamps gutter.",
            username="Ilse Marrowgate",
            avatar_url="https://example.invalid/ilse.png",
            allowed_mentions=discord.AllowedMentions.none(),
            wait=True,
        )
        await sent.edit(content="The lamps gutter and die.")
        [shown] = discord_double.read_channel(scene.channel, as_user=scene.alice)
        assert shown.author_name == "Ilse Marrowgate"
        assert shown.avatar_url == "https://example.invalid/ilse.png"
        assert shown.content == "The lamps gutter and die."
        assert shown.edited and shown.webhook_id == hook.id
        bot_view = await bot.next_message(lambda m: m.webhook_id == hook.id)
        assert bot_view.author.name == "Ilse Marrowgate"


async def test_webhook_create_needs_manage_webhooks(discord_double: DiscordDouble) -> None:
    guild = discord_double.create_guild("Strict", bot_permissions=Perm.EVERYONE_DEFAULT)
    story = discord_double.create_channel(guild, "story")
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, story)
        with pytest.raises(discord.Forbidden) as caught:
            await channel.create_webhook(name="Narrator")
        assert caught.value.code == 50013


async def test_rate_limited_webhook_execute_is_retried_and_delivered_once(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        hook = await channel.create_webhook(name="Narrator")
        discord_double.rate_limit("POST", rf"^/webhooks/{hook.id}/", retry_after=0.05)
        await asyncio.wait_for(hook.send("Once.", username="Narrator", wait=True), TIMEOUT)
        assert [m.content for m in discord_double.read_channel(scene.channel)] == ["Once."]
        statuses = [r.status for r in discord_double.requests_to("POST", rf"^/webhooks/{hook.id}/")]
        assert statuses == [429, 200]


async def test_deleted_webhook_is_unknown(discord_double: DiscordDouble, scene: Scene) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        hook = await channel.create_webhook(name="Narrator")
        discord_double.delete_webhook(hook.id)  # a moderator removes it in Discord
        with pytest.raises(discord.NotFound) as caught:
            await hook.send("Anyone there?", wait=True)
        assert caught.value.code == 10015
        other = await channel.create_webhook(name="Narrator")
        await other.delete()
        assert await channel.webhooks() == []


async def test_dropped_gateway_resumes_and_replays_missed_message(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await discord_double.drop_gateway(hold=True)
        await discord_double.user_sends(scene.alice, scene.channel, "Said while you were away.")
        assert not bot.seen
        discord_double.release_gateway()
        await asyncio.wait_for(bot.resumed.wait(), TIMEOUT)
        missed = await bot.next_message()
        assert missed.content == "Said while you were away."
        assert len(discord_double.gateway.identifies) == 1  # resumed, not re-identified
        assert discord_double.gateway.resume_requests


async def test_server_reconnect_request_resumes(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        discord_double.gateway.send_reconnect()
        await asyncio.wait_for(bot.resumed.wait(), TIMEOUT)
        await discord_double.user_sends(scene.alice, scene.channel, "still here?")
        assert (await bot.next_message()).content == "still here?"


async def test_invalid_session_makes_bot_identify_again(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        bot.readied.clear()
        discord_double.gateway.invalidate_session(resumable=False)
        await asyncio.wait_for(bot.readied.wait(), TIMEOUT)
        assert len(discord_double.gateway.identifies) == 2
        await discord_double.user_sends(scene.alice, scene.channel, "new session")
        assert (await bot.next_message()).content == "new session"


async def test_content_blanked_without_message_content_intent(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot(message_content=False)
    async with discord_double.running(bot):
        assert bot.user is not None
        await discord_double.user_sends(scene.alice, scene.channel, "a secret plan")
        await discord_double.user_sends(scene.alice, scene.channel, f"<@{bot.user.id}> hi")
        plain = await bot.next_message(lambda m: "hi" not in m.content)
        mention = await bot.next_message(lambda m: m.content.endswith("hi"))
        assert plain.content == ""
        assert mention.content == f"<@{bot.user.id}> hi"


async def test_overlong_content_is_a_400(discord_double: DiscordDouble, scene: Scene) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        with pytest.raises(discord.HTTPException) as caught:
            await channel.send("x" * 2001)
        assert caught.value.status == 400 and caught.value.code == 50035
        assert "content" in str(caught.value)
        too_big = discord.Embed(description="y" * 4097)
        with pytest.raises(discord.HTTPException):
            await channel.send(embed=too_big)
        assert discord_double.read_channel(scene.channel) == []


async def test_allowed_mentions_recorded_and_honoured(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        text = f"<@{scene.alice.id}> look out!"
        await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        await channel.send(text)
        quiet, loud = discord_double.read_channel(scene.channel)
        assert quiet.message.allowed_mentions == {"parse": []}
        assert quiet.pinged_user_ids == [] and loud.pinged_user_ids == [scene.alice.id]


async def test_subcommand_autocomplete_and_original_response(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await bot.tree.sync()
        choices = await discord_double.autocomplete(
            scene.mod, scene.channel, "gm", {"name": "o"}, focused="name", subcommand="flag"
        )
        assert [c["value"] for c in choices] == ["door_open", "map_found"]
        await discord_double.run_slash_command(
            scene.mod, scene.channel, "gm", {"name": "door_open", "value": 1}, subcommand="flag"
        )
        await discord_double.wait_for_message(lambda m: m.content == "door_open = 1")
        await discord_double.run_slash_command(scene.alice, scene.channel, "count")
        await discord_double.wait_for_message(lambda m: m.content == "original now says 2")
        counted = [m for m in discord_double.read_channel(scene.channel) if m.content == "2"]
        assert len(counted) == 1 and counted[0].edited


async def test_button_updates_message_and_modal_is_submitted(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    bot = MiniBot()
    async with discord_double.running(bot):
        await bot.tree.sync()
        await discord_double.run_slash_command(scene.alice, scene.channel, "ask")
        question = await discord_double.wait_for_message(lambda m: m.content == "Open the door?")
        signed = await discord_double.press_button(scene.alice, question.message, "door:sign")
        assert await signed.wait_response() == 9 and signed.modal is not None
        assert signed.modal["custom_id"] == "name_modal"
        await discord_double.submit_modal(
            scene.alice, scene.channel, "name_modal", {"name": "Ilse"}
        )
        await discord_double.wait_for_message(lambda m: m.content == "Welcome, Ilse.")
        opened = await discord_double.press_button(scene.alice, question.message, "door:open")
        assert await opened.wait_response() == 7
        [shown] = [m for m in discord_double.read_channel(scene.channel) if m.id == question.id]
        assert shown.content == "The door is open." and shown.message.components == []


async def test_http_realism_headers_errors_and_snowflakes(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    base = discord_double.api_base
    auth = {"Authorization": f"Bot {discord_double.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/users/@me", headers={"Authorization": "Bot nope"}) as resp:
            assert resp.status == 401
        async with http.get(f"{base}/users/@me", headers=auth) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Bucket"} <= set(
                resp.headers
            )
            me = await resp.json()
        created = discord.utils.snowflake_time(int(me["id"]))
        assert abs((discord.utils.utcnow() - created).total_seconds()) < 3600
        url = f"{base}/channels/{scene.channel.id}/messages"
        async with http.post(url, json={"content": "x" * 2001}, headers=auth) as resp:
            assert resp.status == 400
            body = await resp.json()
        assert body["code"] == 50035
        assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        discord_double.rate_limit("POST", "/messages$", retry_after=1.5, is_global=True)
        async with http.post(url, json={"content": "hi"}, headers=auth) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "2"
            assert resp.headers["X-RateLimit-Global"] == "true"
            assert resp.headers["X-RateLimit-Scope"] == "global"
            assert resp.headers["Via"]
            assert await resp.json() == {
                "message": "You are being rate limited.",
                "retry_after": 1.5,
                "global": True,
            }


async def test_threads_reactions_typing_history_and_a_500(
    discord_double: DiscordDouble, scene: Scene
) -> None:
    side = discord_double.create_thread(scene.channel, "side quest", owner=scene.alice)
    bot = MiniBot()
    async with discord_double.running(bot):
        channel = text_channel(bot, scene.channel)
        assert [t.name for t in channel.threads] == ["side quest"]
        hook = await channel.create_webhook(name="Narrator")
        posted = await hook.send(
            "In the thread.", username="Ilse", thread=discord.Object(side.id), wait=True
        )
        await posted.edit(content="In the thread, edited.")
        [in_thread] = discord_double.read_channel(side)
        assert (in_thread.author_name, in_thread.content) == ("Ilse", "In the thread, edited.")
        assert discord_double.read_channel(scene.channel) == []

        for line in ("one", "two", "three"):
            await discord_double.user_sends(scene.alice, scene.channel, line)
        history = [m.content async for m in channel.history(limit=10)]
        assert history == ["three", "two", "one"]
        newest = await channel.fetch_message(discord_double.read_channel(scene.channel)[-1].id)
        await newest.add_reaction("👍")
        async with channel.typing():
            pass
        assert (scene.channel.id, discord_double.world.bot.id) in discord_double.typing
        assert discord_double.read_channel(scene.channel)[-1].reactions == {"👍": 1}

        discord_double.server_error("POST", rf"^/channels/{scene.channel.id}/messages$")
        await asyncio.wait_for(channel.send("after a 500"), TIMEOUT)
        sent = [m for m in discord_double.read_channel(scene.channel) if m.content == "after a 500"]
        assert len(sent) == 1
