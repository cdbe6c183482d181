"""The terminal front end: `python -m bot play STORY [--players alice,bob] [--db PATH]`.

Input, one line at a time:
- `name: text` is input from player `name` (one word, any letters, case ignored; joined on
  first use with the next free suggested character, or a character named after them); a bare
  line is from the last player who wrote (so is a URL: `https://...` names nobody); a story
  character's name (`Corvin:` for Corvin Hale) or `Narrator:` joins nobody: the line is
  refused with a notice, as is a line whose new player cannot join (`--players` names are
  checked all at once, before the story starts: one bad name and nobody joins);
- out-of-character lines, by the Discord front end's rule (starting with `((`, `//`, `[[` or
  `ooc:`, also after `name:`), are not sent to the story;
- a blank line (or the end of input) closes the turn: everything since the last blank line is
  answered together;
- `/join NAME [CHARACTER]` (a suggested character), `/join NAME as CHARACTER NAME[:
  description]` (one of their own; a suggested character's name is that character, with the
  story's description); NAME is checked as `--players` names are (a word of a story
  character's name, `Corvin`, is his), and a character of one's own may not be named so either;
- `/look`, `/characters`, `/rel [name]`, `/flags`, `/arcs`, `/recap`, `/undo`, `/retry`,
  `/quit` (names in any case; `/undo` and `/retry` refuse while lines are not sent yet).
Output: one line per post, `Speaker: text`; an indented `~ ...` line per state change; notices
start with `!`; control characters (terminal escape sequences too) are shown as U+FFFD. A byte
of standard input that is not UTF-8 reads as U+FFFD, and a line's leading byte-order mark is
dropped (a script saved by a Windows editor). Without a terminal on standard input there are no
prompts, so scripts and tests can drive it. The playthrough lives in the database: running the
same command again continues it, finishing a turn that was cut off (by a crash, or by Ctrl-C,
which stops at once with exit code 130; lines typed while the turn was written were not read
yet, and the notice says they are not kept). Standard output closed by its reader (`| head`)
stops the session as /quit does, with exit code 141.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import sys
import threading
import unicodedata
from pathlib import Path
from typing import TextIO

from bot.chat import OUT_OF_CHARACTER
from engine.bootstrap import build_engine, close_engine, load_stories
from engine.errors import EngineError, InvalidInput, NoPlaythrough
from engine.facade import Engine
from engine.results import PlaythroughInfo, TurnResult
from engine.settings import Settings
from engine.sink import NullSink
from engine.stories import StoryCatalog, load_story
from engine.text import (
    CONTROL_CHARACTER,
    has_visible_text,
    name_words,
    same_name,
    without_surrogates,
)
from engine.turns.script import NARRATOR

CONSOLE_GUILD_ID = 1
CONSOLE_CHANNEL_ID = 1
# A single word before a colon names the player (letters of any script, with their combining
# marks: `is_player_name`); a longer name is refused with the rule rather than read as text
# of someone else. `https://...` is a URL, not player https.
PLAYER_LINE = re.compile(r"^([^\W\d_][^\s:]*)\s*:(?!//)\s*(.*)$")
MAX_PLAYER_NAME = 32
JOIN_HINT = "/join NAME [CHARACTER] or /join NAME as CHARACTER: description"
JOIN_USAGE = (
    "Join with /join NAME (the next free suggested character), /join NAME CHARACTER (a "
    "suggested one) or /join NAME as CHARACTER NAME: description (one of your own)."
)
OUT_OF_CHARACTER_NOTICE = "! Out of character: not sent to the story."
STOPPED_BEFORE_OPENING = "! Stopping before the story opened: no input was read, none is kept."
# The exit code when standard output is closed by its reader (`play ... | head`): 128 + SIGPIPE,
# as a shell reports a program that SIGPIPE stopped (and 130 is 128 + SIGINT for Ctrl-C).
EXIT_OUTPUT_CLOSED = 141
# The commands without arguments, and what they do (said when one is given arguments).
NO_ARGUMENTS = {
    "look": "it describes the scene",
    "characters": "it lists the story's characters",
    "flags": "it lists the story's flags",
    "arcs": "it lists the arcs and their episodes",
    "recap": "it shows the story so far",
    "undo": "it takes back the last turn",
    "retry": "it writes the last turn again",
    "quit": "it ends the session",
}


def nfc(text: str) -> str:
    """`É` typed as E + a combining accent is the same as the one-letter `É` (as the engine
    normalizes character names)."""
    return unicodedata.normalize("NFC", text)


def user_id_for(name: str) -> int:
    """A stable id per player name, so a restarted session finds its players again."""
    return int.from_bytes(hashlib.sha256(nfc(name).casefold().encode()).digest()[:6], "big")


def is_player_name(word: str) -> bool:
    """A letter, then letters, digits, `-`, `_` or combining marks (`सीता` has vowel signs,
    which are not letters; regular expressions have no class for them)."""
    return word[:1].isalpha() and all(
        c.isalnum() or c in "-_" or unicodedata.category(c).startswith("M") for c in word
    )


def name_problem(name: str) -> str | None:
    if is_player_name(name) and len(name) <= MAX_PLAYER_NAME:
        return None
    return (
        f"{name[:40]!r} is not a player name: 1 to {MAX_PLAYER_NAME} letters, digits, - or _, "
        "starting with a letter."
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


# Control characters (engine.text's: C0 but newline and tab, DEL, C1 such as the one-byte
# CSI \x9b) would ring the bell, move the cursor or clear the screen; everything printed is
# shown without them.
CONTROL_SHOWN_AS = "\N{REPLACEMENT CHARACTER}"


def terminal_safe(text: str) -> str:
    """`text` with each control character shown as U+FFFD (so an escape sequence is inert:
    `\\x1b[2J` prints as `�[2J`), and each surrogate too (a UTF-8 terminal cannot take one)."""
    return CONTROL_CHARACTER.sub(CONTROL_SHOWN_AS, without_surrogates(text))


class ConsoleSink(NullSink):
    """Prints whole posts when the turn is stored (streamed text is not shown: a terminal
    line per post reads better than a line per streamed fragment)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.writing: int | None = None  # the number of the turn being written, if any
        # Set when the reader of standard output went away (`play ... | head -5`): nothing is
        # printed any more, and the session stops after the line it is handling.
        self.closed = False

    def say(self, line: str) -> None:
        """Every line the console prints goes through here: input, model output and error
        messages are shown without control characters."""
        self.write(terminal_safe(line) + "\n")

    def write(self, text: str) -> None:
        """`text` as it is, unless standard output is closed (then nothing, and `closed`)."""
        if self.closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:  # (raised here, it would end a turn's sink call or the session)
            self.closed = True

    async def turn_started(self, channel_id: int, turn_number: int) -> None:
        self.writing = turn_number

    async def turn_finished(self, channel_id: int, result: TurnResult) -> None:
        self.writing = None
        for post in result.posts:
            self.say(f"{post.speaker}: {one_line(post.text)}")
        for change in result.changes:
            self.say(f"  ~ {change.describe()}")

    async def notice(self, channel_id: int, text: str, *, retryable: bool = False) -> None:
        self.writing = None  # a failed or stopped turn (other notices come between turns)
        hint = " Type /retry to try again." if retryable else ""
        self.say(f"! {one_line(text)}{hint}")


class Console:
    def __init__(self, engine: Engine, sink: ConsoleSink, story_key: str, interactive: bool):
        self.engine = engine
        self.sink = sink
        self.story_key = story_key
        self.interactive = interactive
        # By casefolded NFC player name (as user ids are): the name as first written, their
        # character, their user id (as stored: a name stored before NFC keeps its id).
        self.players: dict[str, str] = {}
        self.characters: dict[str, str] = {}
        self.user_ids: dict[str, int] = {}
        self.last_player: str | None = None
        self.waiting: list[str] = []  # who wrote since the last blank line

    async def open(self, players: list[str]) -> None:
        channel = CONSOLE_CHANNEL_ID
        try:
            info: PlaythroughInfo | None = await self.engine.playthrough(channel)
        except NoPlaythrough:
            info = None
        if info is not None:
            if info.story_key != self.story_key:
                raise EngineError(
                    f"This database is playing {info.story_key!r}; use another --db for "
                    f"{self.story_key!r}."
                )
            for player in await self.engine.players(channel):
                self._joined(player.display_name, player.character_name, player.user_id)
        # Every name is checked before the story starts and anybody joins.
        new_players = await self._new_players(players)
        if info is None:
            info = await self.engine.start(CONSOLE_GUILD_ID, channel, self.story_key)
            self.sink.say(f"! Story started: {info.story_title}")
            if info.opening:
                self.sink.say(f"Narrator: {one_line(info.opening)}")
        else:
            self.sink.say(f"! Continuing {info.story_title} after turn {info.turn_count}")
            await self.engine.recover()
            await self.engine.wait_idle(channel)
        for name in new_players:
            await self._join(name)

    async def _new_players(self, names: list[str]) -> list[str]:
        """The `--players` not playing yet, in order; EngineError lists every name that cannot
        join: not a player name, or the name of an NPC, of a player's character or of the
        narrator (a suggested character's is fine: `--players ash` may play Ash). A name
        listed twice joins once."""
        new: dict[str, str] = {}
        problems: list[str] = []
        twice: list[str] = []
        for name in map(nfc, names):
            key = name.casefold()
            if key in new:
                twice.append(new[key])
                continue
            new[key] = name
            if key in self.players:
                continue  # playing already (a continued story)
            problem = await self._player_name_problem(name)
            if problem:
                problems.append(problem)
        if problems:
            raise EngineError(f"--players: nobody joined. {' '.join(problems)}")
        for name in dict.fromkeys(twice):
            self.sink.say(f"! {name} is listed more than once in --players: joined once.")
        return [name for key, name in new.items() if key not in self.players]

    def _joined(self, name: str, character: str, user_id: int) -> None:
        key = nfc(name).casefold()
        self.players[key] = nfc(name)
        self.characters[key] = character
        self.user_ids[key] = user_id

    async def _join(self, name: str, character: str | None = None, description: str = "") -> None:
        """Join as `character` (a suggested one's key, or a name of their own), else as the next
        free suggested character."""
        problem = name_problem(name)
        if problem:
            raise InvalidInput(problem)
        own = ""
        if character is None:
            taken = {p.character_key for p in await self.engine.players(CONSOLE_CHANNEL_ID)}
            story = self.engine.story(self.story_key)
            free = next((s for s in story.suggested_characters if s.key not in taken), None)
            character = free.key if free else name.capitalize()
            own = "" if free else " (their own character: every suggested one is taken)"
        player = await self.engine.join(
            CONSOLE_CHANNEL_ID,
            user_id_for(name),
            name,
            character=character,
            description=description,
        )
        self._joined(name, player.character_name, player.user_id)
        self.sink.say(f"! {name} plays {player.character_name}{own}")

    async def join(self, arg: str) -> None:
        """`/join NAME [CHARACTER]` with a suggested character, `/join NAME as CHARACTER NAME[:
        description]` with one of their own."""
        name, _, rest = arg.strip().partition(" ")
        rest = rest.strip()
        word, _, custom = rest.partition(" ")
        character, _, description = custom.partition(":")
        own = word.casefold() == "as"
        if not name or (own and not character.strip()):
            self.sink.say(f"! {JOIN_USAGE}")
            return
        key = name.casefold()
        if key in self.players:
            self.sink.say(f"! {self.players[key]} already plays {self.characters[key]}.")
            return
        problem = await self._player_name_problem(name)
        if problem:
            self.sink.say(f"! {problem}")
            return
        if own:
            await self._join(name, character.strip(), description.strip())
            return
        if not rest:
            await self._join(name)
            return
        # Only suggested characters here: the engine would take an unknown name as a new one.
        story = self.engine.story(self.story_key)
        wanted = rest.casefold()
        spec = next(
            (s for s in story.suggested_characters if wanted in (s.key, s.name.casefold())), None
        )
        if spec is not None:
            await self._join(name, spec.key)
            return
        players = {
            p.character_key: p.display_name for p in await self.engine.players(CONSOLE_CHANNEL_ID)
        }
        choices = ", ".join(
            s.name + (f" (played by {players[s.key]})" if s.key in players else "")
            for s in story.suggested_characters
        )
        self.sink.say(
            f"! {story.title} has no suggested character {rest!r}. Choices: {choices or 'none'}; "
            f"or one of your own: /join {name} as NAME: description"
        )

    async def handle(self, line: str) -> bool:
        """Handle one input line; False ends the session."""
        # A byte-order mark starts a script saved by a Windows editor (each file's, if several
        # are piped one after another); names (also in commands) are compared in NFC.
        line = nfc(line.rstrip("\r\n").removeprefix("\ufeff"))
        if not line.strip():
            await self.close_turn()
            return True
        if OUT_OF_CHARACTER.match(line):  # before commands: `// brb` is chat, not a command
            self.sink.say(OUT_OF_CHARACTER_NOTICE)
            return True
        if line.startswith("/"):
            return await self.command(line[1:].strip())
        match = PLAYER_LINE.match(line)
        if match and is_player_name(match.group(1)):
            name, text = match.group(1), match.group(2)
        elif self.last_player is not None:
            name, text = self.last_player, line
        else:
            self.sink.say("! Say who is speaking first, like `alice: I open the door`.")
            return True
        if OUT_OF_CHARACTER.match(text):  # `alice: ((brb))`, as a Discord message `((brb))`
            self.sink.say(OUT_OF_CHARACTER_NOTICE)
            return True
        if not has_visible_text(text):
            # The engine refuses it too, but only after the join would have taken a character.
            self.sink.say("! There is nothing to say: the message is empty.")
            return True
        limit = self.engine.options.max_input_chars  # as the engine counts: stripped
        if len(text.strip()) > limit:  # before a new player's join, as the emptiness
            self.sink.say(
                f"! That is {len(text.strip())} characters; keep one input to at most {limit} "
                "and split the rest. The line was not sent."
            )
            return True
        if name.casefold() not in self.players:
            character = await self._character_named(name)
            if character is not None:
                self.sink.say(self._not_a_player(name, character))
                return True
            try:
                await self._join(name)
            except InvalidInput as error:  # the line must not vanish without a word
                how = "" if name_problem(name) else f" Join with {JOIN_HINT}, then write it again."
                self.sink.say(f"! {error} The line was not sent.{how}")
                return True
        name = self.players[name.casefold()]
        self.last_player = name
        user_id = self.user_ids[name.casefold()]
        await self.engine.submit_input(CONSOLE_CHANNEL_ID, user_id, text, queue=False)
        self.waiting.append(name)
        return True

    async def _character_named(self, name: str, *, suggested: bool = True) -> str | None:
        """The story character a new `name:` names, if any: an NPC or a player's character, or
        (with `suggested`) a suggested one nobody plays yet, by key, name or a word of its name
        (`Corvin` is Corvin Hale); or the narrator. Before the story starts, its file's
        characters. Names are compared as the engine's join compares them: `Ｍｉｒａ` and
        all-Cyrillic `Міга` are Mira."""
        if same_name(name, NARRATOR):
            return NARRATOR
        try:
            running = await self.engine.characters(CONSOLE_CHANNEL_ID)
            characters = [(c.key, c.name) for c in running]
        except NoPlaythrough:
            written = self.engine.catalog.stories[self.story_key].story.characters
            characters = [(c.key, c.name) for c in written]
        if suggested:
            story = self.engine.story(self.story_key)
            characters += [(s.key, s.name) for s in story.suggested_characters]
        for key, character in characters:
            if same_name(name, key, *name_words(character)):
                return character
        return None

    async def _player_name_problem(self, name: str) -> str | None:
        """Why `name` cannot be a new player's name, if it cannot (for `--players` and
        `/join` alike): not a player name, or the name of the narrator, an NPC or a player's
        character (a suggested character nobody plays yet is fine: `ash` may play Ash)."""
        problem = name_problem(name)
        character = None if problem else await self._character_named(name, suggested=False)
        if character is not None:
            problem = f"{_taken_name(name, character)}: pick another player name."
        return problem

    def _not_a_player(self, name: str, character: str) -> str:
        """Why `name: text` was not sent: `name` is a story character's, not a player's."""
        also = f"To write as {self.last_player}, leave out the name. " if self.last_player else ""
        return (
            f"! {_taken_name(name, character)}, not a player: the line was not sent. {also}"
            f"To join as a new player: {JOIN_HINT}."
        )

    def unanswered(self) -> str:
        """What happens to the input since the last blank line: stored input is answered when
        the playthrough is opened again (recover)."""
        who = ", ".join(dict.fromkeys(self.waiting))
        count = len(self.waiting)
        return (
            f"{count} input{'s' if count > 1 else ''} from {who} not answered yet: kept, and "
            "answered when you run this command again."
        )

    def interrupted(self, unread: int = 0) -> str:
        """The notice for Ctrl-C: the turn being written is cut off (`close_engine` with
        `cancel_running`), and nothing of it is stored before its last transaction. `unread`
        lines were typed while the console was busy (the turn, a command): they were not
        handled yet and are dropped, which the notice says."""
        if self.sink.writing is not None:
            notice = (
                f"! Stopping: turn {self.sink.writing} is cut off before it is stored; its input "
                "is kept, and answered when you run this command again."
            )
        elif self.waiting:
            notice = f"! Stopping: {self.unanswered()}"
        else:
            notice = "! Stopping."
        if unread:
            lines, were, are = (
                ("1 line", "was", "is") if unread == 1 else (f"{unread} lines", "were", "are")
            )
            notice += f" {lines} typed meanwhile {were} not read yet and {are} not kept."
        return notice

    async def close_turn(self) -> None:
        if not self.waiting:
            return
        self.waiting = []
        self.engine.run_pending(CONSOLE_CHANNEL_ID)
        await self.engine.wait_idle(CONSOLE_CHANNEL_ID)

    async def command(self, text: str) -> bool:
        typed, _, arg = text.replace("\t", " ").partition(" ")
        name = typed.casefold()  # `/LOOK` is `/look`
        channel = CONSOLE_CHANNEL_ID
        say = self.sink.say
        if name in NO_ARGUMENTS and arg.strip():
            # `/undo 3` must not undo one turn while seeming to undo three.
            say(f"! /{name} takes no arguments: {NO_ARGUMENTS[name]}. Nothing was done.")
            return True
        if name in ("undo", "retry") and self.waiting:
            # The engine would take these lines for a failed turn's input: /retry would answer
            # them as a new turn, /undo would set them aside.
            who = ", ".join(dict.fromkeys(self.waiting))
            say(
                f"! /{name} not done: lines from {who} are not sent yet (they are kept). Send "
                "them with a blank line first; /undo and /retry act on turns already sent."
            )
            return True
        if name == "quit":
            if self.waiting:
                say(f"! {self.unanswered()}")
            return False
        if name == "join":
            await self.join(arg)
        elif name == "look":
            scene = await self.engine.scene(channel)
            say(f"! {scene.location_name} — {scene.time_of_day}, {scene.weather}; {scene.tone}")
            for c in scene.present:
                say(f"!   {c.name}" + (f" ({c.mood})" if c.mood else ""))
        elif name == "characters":
            for c in await self.engine.characters(channel):
                where = "here" if c.present else (c.location or "away")
                say(f"! {c.name} [{c.role}] {where}" + (f", {c.mood}" if c.mood else ""))
        elif name == "rel":
            await self.relationships(arg.strip())
        elif name == "flags":
            for f in await self.engine.flags(channel):
                say(f"! {f.describe()}")
        elif name == "arcs":
            for arc in await self.engine.arcs(channel):
                say(f"! {arc.title} [{arc.status}]")
                for ep in arc.episodes:
                    say(f"!   {ep.title} [{ep.status}]")
        elif name == "recap":
            recap = await self.engine.recap(channel)
            for chapter in recap.chapters:
                say(f"! So far {one_line(chapter)}")
            for summary in recap.summaries:
                say(f"! {one_line(summary)}")
            for post in recap.recent:
                say(f"! {post.speaker}: {one_line(post.text)}")
        elif name == "undo":
            number = await self.engine.undo(channel)
            say(f"! Turn {number} undone")
        elif name == "retry":
            retried = await self.engine.retry(channel)
            if retried.turn is not None:  # else the engine said why it failed
                done = "rewritten" if retried.rewritten else "written"
                say(f"! Turn {retried.turn_number} {done}")
        else:
            say(
                f"! Unknown command /{typed}. Commands: /join /look /characters /rel /flags "
                "/arcs /recap /undo /retry /quit"
            )
        return True

    async def relationships(self, who: str) -> None:
        """`/rel [name]`: a character's relationships, by character or player name."""
        channel = CONSOLE_CHANNEL_ID
        if who:
            wanted = who.casefold()
            characters = await self.engine.characters(channel)
            named = next((c.name for c in characters if wanted in (c.key, c.name.casefold())), None)
            # A player's name means their character, unless a character has that name.
            who = named or self.characters.get(wanted, who)
        relationships = await self.engine.relationships(channel, who or None)
        if not relationships:
            self.sink.say(
                f"! {who} has no relationships yet." if who else "! No relationships yet."
            )
        for r in relationships:
            self.sink.say(f"! {r.describe()}")


def _read_lines(stream: TextIO) -> asyncio.Queue[str | None]:
    """Lines of `stream` read by a daemon thread (a blocked read must not delay exit)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def reader() -> None:
        try:
            for line in iter(stream.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:  # (a read that fails ends the input, rather than leave the session waiting)
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="console-stdin", daemon=True).start()
    return queue


def _replacing_undecodable(stream: TextIO) -> TextIO:
    """`stream` (standard input) reading a byte it cannot decode as U+FFFD: a stray byte
    that is not UTF-8 neither ends the session (`strict`) nor reaches the story as a
    surrogate (`surrogateescape`, Python's default for a pipe in the C locale)."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors != "replace":
        stream.reconfigure(errors="replace")
    return stream


def _taken_name(name: str, character: str) -> str:
    """`Corvin (Corvin Hale) is the name of a character`, `Narrator is the story's own voice`."""
    who = character if name.casefold() == character.casefold() else f"{name} ({character})"
    what = "the story's own voice" if character == NARRATOR else "the name of a character"
    return f"{who} is {what}"


def _unread(lines: asyncio.Queue[str | None] | None) -> int:
    """How many lines with text were read from standard input but not handled yet (typed
    while a turn was being written); they are taken out of `lines`."""
    count = 0
    while lines is not None and not lines.empty():
        line = lines.get_nowait()
        count += line is not None and bool(line.strip())
    return count


async def play(
    settings: Settings,
    story: str,
    players: list[str],
    database_url: str | None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> int:
    interactive = stdin.isatty()
    sink = ConsoleSink(stdout)
    try:
        catalog, story_key = await _catalog_for(settings, story)
        engine = await build_engine(
            settings, sink, catalog=catalog, database_url=database_url, collect_window_seconds=0.0
        )
    except asyncio.CancelledError:
        sink.say(STOPPED_BEFORE_OPENING)
        raise
    console = Console(engine, sink, story_key, interactive)
    interrupted = False
    lines: asyncio.Queue[str | None] | None = None
    try:
        await console.open(players)
        lines = _read_lines(_replacing_undecodable(stdin))
        while not sink.closed:
            if interactive:
                sink.write("> ")
            line = await lines.get()
            if line is None:
                await console.close_turn()
                break
            try:
                if not await console.handle(line):
                    break
            except EngineError as error:
                sink.say(f"! {error}")
    except asyncio.CancelledError:
        # Ctrl-C: asyncio.run cancels this task and then raises KeyboardInterrupt, which the
        # command line turns into exit code 130. Stop now rather than finish the turn.
        interrupted = True
        if interactive:
            sink.write("\n")  # after the `^C` the terminal echoed
        if lines is None:  # (still opening the story: joining --players)
            sink.say(STOPPED_BEFORE_OPENING)
        else:
            sink.say(console.interrupted(_unread(lines)))
        raise
    finally:
        await close_engine(engine, cancel_running=interrupted)
    # With standard output closed, the session stopped as /quit stops it: lines not sent yet
    # by a blank line are kept, and answered when the command runs again.
    return EXIT_OUTPUT_CLOSED if sink.closed else 0


async def _catalog_for(settings: Settings, story: str) -> tuple[StoryCatalog, str]:
    """STORY is a file path or a story key of STORIES_DIR."""
    path = Path(story)
    if path.suffix == ".toml" or await asyncio.to_thread(path.is_file):
        loaded = await asyncio.to_thread(load_story, path)
        return StoryCatalog({loaded.key: loaded}, []), loaded.key
    catalog = await load_stories(settings)
    if story not in catalog.stories:
        known = ", ".join(sorted(catalog.stories)) or "none"
        raise EngineError(f"No story {story!r} in {settings.stories_dir} (stories: {known}).")
    return catalog, story
