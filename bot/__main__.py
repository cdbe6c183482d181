"""Command line: `python -m bot {run,migrate,validate}` (also installed as `dreamwalkers`).

User mistakes (bad settings, broken story files, an unusable database URL) end with a clear
message and a non-zero exit code, never a traceback:
0 success, 1 the work failed (e.g. story files have errors), 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import discord
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError

from engine.db.database import create_engine
from engine.db.migrate import upgrade_to_head
from engine.settings import SettingsError, load_settings
from engine.stories import StoryError, find_story_files, load_story
from engine.text import without_controls

log = logging.getLogger("dreamwalkers")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class CommandFailed(Exception):
    """Ends the command with a message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _migrate(url: str, source: str = "DATABASE_URL") -> None:
    """Create or upgrade the database at `url`; a database that cannot be used ends the
    command with a message naming `source` (the variable or option the URL came from)."""
    try:
        engine = create_engine(url)
    except ArgumentError as error:
        raise CommandFailed(f"{source}: not a usable database URL ({error})", EXIT_CONFIG) from None
    except ImportError as error:  # the URL names a driver that is not installed
        raise CommandFailed(
            f"{source}: the database driver is not installed ({error})", EXIT_CONFIG
        ) from None
    except OSError as error:
        raise CommandFailed(f"{source}: cannot create the database folder ({error})") from None
    try:
        await upgrade_to_head(engine)
    except DatabaseError as error:  # also a file that is not a database, not only OperationalError
        raise CommandFailed(f"{source}: cannot open the database ({error.orig})") from None
    finally:
        await engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    _configure_logging(settings.log_level)
    asyncio.run(_migrate(settings.database_url))
    print(f"Database is up to date: {_shown_url(settings.database_url)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from bot.run import run_bot

    settings = load_settings()
    settings.require_discord_token()
    _configure_logging(settings.log_level)
    asyncio.run(_migrate(settings.database_url))
    try:
        asyncio.run(run_bot(settings))
    except discord.LoginFailure:
        raise CommandFailed(
            "DISCORD_TOKEN was refused by Discord: check the token.", EXIT_CONFIG
        ) from None
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from bot.run import sync_commands

    settings = load_settings()
    settings.require_discord_token()
    _configure_logging(settings.log_level)
    try:
        count = asyncio.run(sync_commands(settings))
    except discord.LoginFailure:
        raise CommandFailed(
            "DISCORD_TOKEN was refused by Discord: check the token.", EXIT_CONFIG
        ) from None
    print(f"Synced {count} commands globally (Discord may take up to an hour to show them).")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths or [load_settings().stories_dir]
    files, problems = find_story_files(paths)
    summaries: list[str] = []
    for file in files:
        try:
            summaries.append(load_story(file).summary())
        except StoryError as error:
            problems.extend(error.problems)
    for line in summaries:
        print(without_controls(line))
    if problems:
        for line in problems:
            print(without_controls(line), file=sys.stderr)
        count = len(problems)
        print(f"{count} problem{'s' if count != 1 else ''} found.", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_play(args: argparse.Namespace) -> int:
    from bot.console import EXIT_OUTPUT_CLOSED, play
    from engine.errors import EngineError

    settings = load_settings()
    _configure_logging(args.log_level or "WARNING")
    players = [p.strip() for p in (args.players or "").split(",") if p.strip()]
    url = f"sqlite+aiosqlite:///{args.db}" if args.db else None
    # A database that cannot be used (a folder, a file that is not SQLite, a missing driver)
    # is said in one line, as `migrate` says it, before the story loads.
    asyncio.run(_migrate(url or settings.database_url, "--db" if args.db else "DATABASE_URL"))
    try:
        code = asyncio.run(play(settings, args.story, players, url))
    except (EngineError, StoryError) as error:
        raise CommandFailed(str(error)) from None
    if code == EXIT_OUTPUT_CLOSED:
        # What is left in stdout's buffer cannot be written: flushing it at exit would print
        # a BrokenPipeError to stderr. Point stdout at /dev/null instead.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamwalkers",
        description="Dreamwalkers: a Discord bot for group roleplay with an LLM narrator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="start the Discord bot",
        description="Check the configuration, migrate the database, load the stories and start "
        "the Discord bot. Needs DISCORD_TOKEN.",
    )
    run.set_defaults(handler=cmd_run)

    sync = commands.add_parser(
        "sync",
        help="register slash commands with Discord for every server",
        description="Sync the slash commands globally (use DEV_GUILD_ID while developing: "
        "commands then appear at once in that server).",
    )
    sync.set_defaults(handler=cmd_sync)

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations",
        description="Create the database if needed and upgrade it to the newest schema "
        "(DATABASE_URL).",
    )
    migrate.set_defaults(handler=cmd_migrate)

    validate = commands.add_parser(
        "validate",
        help="check story files",
        description="Check story files or folders of them; prints one summary line per story, "
        "or every problem with its file, entry and field (exit code 1).",
    )
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="story files or folders (default: STORIES_DIR)",
    )
    validate.set_defaults(handler=cmd_validate)

    play = commands.add_parser(
        "play",
        help="play a story in the terminal",
        description="Play a story from the terminal against the configured LLM. Lines `name: "
        "text` are input from player `name`; a blank line ends the turn; /look, /characters, "
        "/rel [name], /flags, /arcs, /recap, /undo, /retry, /quit. Running it again with the "
        "same database continues the story.",
    )
    play.add_argument("story", metavar="STORY", help="a story file or a story key in STORIES_DIR")
    play.add_argument("--players", help="comma-separated player names to join at start")
    play.add_argument("--db", type=Path, help="SQLite file for this game (default: DATABASE_URL)")
    play.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    play.set_defaults(handler=cmd_play)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except SettingsError as error:
        # (without control characters: a story file or a name could hold escape sequences)
        print(f"Configuration error: {without_controls(str(error))}", file=sys.stderr)
        return EXIT_CONFIG
    except CommandFailed as error:
        print(f"Error: {without_controls(str(error))}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
