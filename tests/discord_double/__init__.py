"""A local Discord for tests: the unmodified discord.py client talks to it over loopback.

The double serves Discord's REST API (``/api/v10``) and the gateway websocket on
127.0.0.1 at a random port. Tests build a world, start the bot, act as users and assert on
what users see::

    async def test_hello(discord_double: DiscordDouble) -> None:
        guild = discord_double.create_guild("Dream Guild")
        channel = discord_double.create_channel(guild, "story")
        alice = discord_double.create_user("alice")
        discord_double.add_member(guild, alice)

        bot = MyBot(intents=discord.Intents.default())  # any discord.Client
        async with discord_double.running(bot):          # logs in with discord_double.token
            await bot.tree.sync()
            inv = await discord_double.run_slash_command(alice, channel, "hello", {"name": "x"})
            shown = await discord_double.wait_for_message(lambda m: "x" in m.content)
            assert shown.author_name == "Dreamwalkers"

Things worth knowing:

- commands must be synced (``await tree.sync()``, global or guild) before a user can run
  them, and ``default_member_permissions`` hides a command from members who lack them
  (``bypass_default_permissions=True`` models a server admin overriding that);
- the bot has 3 s to send the initial interaction callback, as on Discord;
- without the MESSAGE_CONTENT intent the bot gets blank content, embeds, attachments and
  components, except in DMs, messages that mention it and its own messages;
- a session that identifies with ``shard: [id, count]`` gets READY with that shard and
  only the events of its guilds (``(guild_id >> 22) % count == id``; events of no guild go
  to shard 0), as on Discord;
- discord.py itself waits ``guild_ready_timeout`` (2 s) before ``on_ready`` and 5 s before
  re-identifying (``before_identify_hook``); test bots may shorten both.

The ``discord_double`` fixture (``tests.discord_double.pytest_plugin``) starts the server and
patches ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``, restoring both
afterwards. Outside pytest: ``await double.start()``, ``with double.patched(): ...``,
``await double.close()``.

Useful entry points on :class:`DiscordDouble`:

- world: ``create_user``, ``create_guild`` (bot joins with ``bot_permissions``),
  ``create_role``, ``add_member``, ``give_role``, ``create_channel``, ``create_thread``,
  ``set_overwrite``, ``dm_channel``;
- users act: ``user_sends``, ``user_edits``, ``user_deletes``, ``user_reacts``,
  ``run_slash_command`` (returns an :class:`Invocation`), ``autocomplete``,
  ``press_button``, ``submit_modal``;
- observe: ``read_channel(channel, as_user=...)`` and ``wait_for_message(predicate)`` give
  :class:`SeenMessage` (author name and avatar as shown, content, embeds, edited);
  ``requests`` / ``requests_to(method, path_regex)``; ``gateway.identifies`` (intents),
  ``gateway.resume_requests``; ``Message.allowed_mentions``;
- faults: ``rate_limit(method, path_regex, retry_after=..., is_global=...)``,
  ``server_error(...)``, ``drop_gateway(hold=...)`` / ``release_gateway()``,
  ``gateway.send_reconnect()``, ``gateway.invalidate_session()``, deleting a webhook.
"""

from .double import DiscordDouble
from .interactions import Invocation
from .state import Channel, ChannelType, Guild, Member, Message, Overwrite, Perm, Role, User
from .views import SeenMessage

__all__ = [
    "Channel",
    "ChannelType",
    "DiscordDouble",
    "Guild",
    "Invocation",
    "Member",
    "Message",
    "Overwrite",
    "Perm",
    "Role",
    "SeenMessage",
    "User",
]
