"""`python -m bot play` as a separate process, driven through standard input, against the
LLM double on loopback: a scripted multiplayer session, and a kill in the middle of a turn."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from bot import console
from bot.console import play
from engine.errors import EngineError
from engine.results import ChangeView
from engine.settings import Settings
from tests.engine_support import TEST_STORY
from tests.llm_double import LLMDouble

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0


async def start_play(
    tmp_path: Path,
    server: LLMDouble,
    *extra: str,
    stdin: int = asyncio.subprocess.PIPE,
    stdout: int = asyncio.subprocess.PIPE,
    **variables: str,
) -> asyncio.subprocess.Process:
    story = tmp_path / "inn.toml"
    story.write_text(TEST_STORY)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_", "OPENAI_", "DISCORD_", "DATABASE_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": server.base_url,
            "LLM_MAX_RETRIES": "0",
            "LLM_DEADLINE": "30",
            **variables,
        }
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "play",
        str(story),
        "--db",
        str(tmp_path / "game.db"),
        *extra,
        cwd=tmp_path,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )


def console_settings(server: LLMDouble, **settings: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_base_url=server.base_url,
        llm_model="double",
        llm_json_mode="json_schema",
        llm_max_retries=0,
        llm_deadline=30.0,
        **settings,
    )


async def play_lines(
    tmp_path: Path,
    server: LLMDouble,
    script: str,
    players: tuple[str, ...] = (),
    story_text: str = TEST_STORY,
    **settings: Any,
) -> list[str]:
    """The output lines of `bot play` run in this process (faster than a new one)."""
    story = tmp_path / "inn.toml"
    story.write_text(story_text)
    out = io.StringIO()
    url = f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"
    code = await asyncio.wait_for(
        play(
            console_settings(server, **settings),
            str(story),
            list(players),
            url,
            io.StringIO(script),
            out,
        ),
        WAIT,
    )
    assert code == 0
    return out.getvalue().splitlines()


async def test_scripted_multiplayer_session(tmp_path: Path, llm_server: LLMDouble) -> None:
    llm_server.reply("scene", 'Narrator: Thunder rolls.\nMira: "Shut the door," she says.')
    llm_server.reply(
        "director",
        json.dumps(
            {
                "summary": "Mira warmed to Ash.",
                "relationships": [
                    {"source": "mira", "target": "ash", "trust": 0.1, "reason": "helped"}
                ],
            }
        ),
    )
    llm_server.fail("scene", "500", skip=1)  # the second turn fails, then /retry works
    script = (
        "ash: I shut the door behind me.\n"
        "rowan: I warm my hands.\n"
        "\n"
        "/rel Mira\n"
        "ash: Anyone upstairs?\n"
        "\n"
        "/retry\n"
        "/flags\n"
        "/nonsense\n"
    )
    process = await start_play(tmp_path, llm_server, "--players", "ash,rowan")
    out, err = await asyncio.wait_for(process.communicate(script.encode()), WAIT)
    lines = out.decode().splitlines()
    assert process.returncode == 0, err.decode()
    assert "Narrator: Thunder rolls." in lines
    assert 'Mira: "Shut the door," she says.' in lines
    # +0.10 asked from 0.10: steps shrink away from the middle (0.1 * (1 - 0.75 * 0.1)).
    assert "  ~ trust Mira -> Ash +0.09: helped" in lines
    assert "! Mira -> Ash (acquaintance): trust +0.19, affection +0.00, familiarity 0.00" in lines
    [failed] = [line for line in lines if line.startswith("! The story could not continue")]
    assert failed.endswith("Your messages are kept. Type /retry to try again.")
    assert any(line.startswith("! Unknown command /nonsense") for line in lines)
    assert "! door_open = false (set by the story before the first turn)" in lines
    # One scene call answered both players; the failed turn's input was kept for /retry.
    first, _failed, retried = llm_server.calls("scene")
    assert "Ash: I shut the door behind me." in first.prompt
    assert "Rowan: I warm my hands." in first.prompt
    assert "Ash: Anyone upstairs?" in retried.prompt
    assert "Traceback" not in err.decode()


async def test_killed_mid_turn_is_finished_after_restart(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    llm_server.latency = 30.0  # the first scene call hangs until the process is killed
    process = await start_play(tmp_path, llm_server, "--players", "ash")
    assert process.stdin is not None
    process.stdin.write(b"ash: I light the lamp.\n\n")
    await process.stdin.drain()
    await llm_server.wait_for_call("scene")  # the turn is waiting on the model
    process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(process.wait(), WAIT)

    llm_server.latency = 0.0
    llm_server.reply("scene", "Narrator: The lamp catches, and shadows leap.")
    restart = await start_play(tmp_path, llm_server, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(restart.communicate(), WAIT)
    assert restart.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines.count("Narrator: The lamp catches, and shadows leap.") == 1

    with sqlite3.connect(tmp_path / "game.db") as db:
        turns = db.execute("select status from turns").fetchall()
        inputs = db.execute("select content from messages where kind = 'player'").fetchall()
        posts = db.execute(
            "select content from messages where kind = 'narrator' and turn_id is not null"
        ).fetchall()
    assert turns == [("done",)]
    assert inputs == [("I light the lamp.",)]
    assert posts == [("The lamp catches, and shadows leap.",)]


async def test_ctrl_c_mid_turn_says_so_and_exits_130(tmp_path: Path, llm_server: LLMDouble) -> None:
    llm_server.latency = 30.0  # the scene call hangs: Ctrl-C must not wait for it
    process = await start_play(tmp_path, llm_server, "--players", "ash")
    assert process.stdin is not None
    # Two lines typed while the turn is written: read, but not handled before the answer.
    process.stdin.write(b"ash: I light the lamp.\n\nash: I wait.\n\n/look\n")
    await process.stdin.drain()
    await llm_server.wait_for_call("scene")
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 10.0)  # not the 30 s grace
    assert process.returncode == 130, err.decode()
    assert out.decode().splitlines()[-1] == (
        "! Stopping: turn 1 is cut off before it is stored; its input is kept, and answered when "
        "you run this command again. 2 lines typed meanwhile were not read yet and are not kept."
    )
    assert "Traceback" not in err.decode()

    llm_server.latency = 0.0
    llm_server.reply("scene", "Narrator: The lamp catches.")
    restart = await start_play(tmp_path, llm_server, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(restart.communicate(), WAIT)
    assert restart.returncode == 0, err.decode()
    assert "Narrator: The lamp catches." in out.decode().splitlines()
    with sqlite3.connect(tmp_path / "game.db") as db:
        turns = db.execute("select status from turns").fetchall()
    assert turns == [("done",)]
    assert "I wait" not in llm_server.calls("scene")[-1].prompt  # as the notice said


async def test_players_option_is_checked_whole_before_anybody_joins(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    process = await start_play(
        tmp_path,
        llm_server,
        "--players",
        "carl,dora,carl,Mira,1x",
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 1
    assert err.decode().splitlines()[-1] == (
        "Error: --players: nobody joined. Mira is the name of a character: pick another player "
        "name. '1x' is not a player name: 1 to 32 letters, digits, - or _, starting with a letter."
    )
    assert out.decode() == ""  # the story did not even start
    with sqlite3.connect(tmp_path / "game.db") as db:
        assert db.execute("select count(*) from players").fetchall() == [(0,)]
        assert db.execute("select count(*) from playthroughs").fetchall() == [(0,)]

    # A name listed twice (in any case) joins once, and says so.
    lines = await play_lines(tmp_path, llm_server, "", players=("carl", "dora", "Carl"))
    assert [line for line in lines if " plays " in line] == [
        "! carl plays Ash",
        "! dora plays Rowan",
    ]
    assert "! carl is listed more than once in --players: joined once." in lines
    # Continuing: who plays already is no problem; a story character still is (Bram's key).
    with pytest.raises(
        EngineError, match=r"^--players: nobody joined\. Bram is the name of a character"
    ):
        await play_lines(tmp_path, llm_server, "", players=("dora", "erin", "bram"))
    lines = await play_lines(tmp_path, llm_server, "", players=("dora", "erin"))
    assert [line for line in lines if " plays " in line] == [
        "! erin plays Erin (their own character: every suggested one is taken)"
    ]


@pytest.mark.parametrize(
    "io_encoding",
    [
        "",  # Python's default for a pipe in the C.UTF-8 locale: surrogateescape
        "utf-8:strict",  # a UTF-8 locale's default: the byte is an error
    ],
)
async def test_bytes_that_are_not_utf8_read_as_replacement_characters(
    tmp_path: Path, llm_server: LLMDouble, io_encoding: str
) -> None:
    llm_server.reply("scene", "Narrator: The bell rings.", "Narrator: And again.")
    script = b"alice: bad \xff bytes\n\nalice: after \xe9t\xe9\n\n/recap\n"
    variables = {"PYTHONIOENCODING": io_encoding} if io_encoding else {}
    process = await start_play(tmp_path, llm_server, **variables)
    out, err = await asyncio.wait_for(process.communicate(script), WAIT)
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    lines = out.decode().splitlines()  # (strict: what it printed is UTF-8)
    first, second = llm_server.calls("scene")
    assert "Ash: bad \ufffd bytes" in first.prompt
    assert "Ash: after \ufffdt\ufffd" in second.prompt  # the session went on
    assert "! Ash: bad \ufffd bytes" in lines  # /recap: as it was stored


def test_what_is_shown_has_no_surrogates() -> None:
    # Printed to a strict UTF-8 terminal, a surrogate would end the session.
    assert console.terminal_safe("bad \udcff \x1b[2J") == "bad \ufffd \ufffd[2J"


async def test_a_byte_order_mark_and_crlf_line_ends(tmp_path: Path, llm_server: LLMDouble) -> None:
    # As a Windows editor saves a script (also two such files one after the other).
    script = "\ufeffalice: bom line\r\n\r\n\ufeffbob: crlf line\r\n\r\n"
    lines = await play_lines(tmp_path, llm_server, script)
    assert not [line for line in lines if "Say who is speaking first" in line]
    assert [line for line in lines if " plays " in line] == [
        "! alice plays Ash",
        "! bob plays Rowan",
    ]
    first, second = llm_server.calls("scene")
    assert "Ash: bom line" in first.prompt
    assert "Rowan: crlf line" in second.prompt
    assert "\ufeff" not in first.prompt + second.prompt


async def test_ctrl_c_while_the_story_opens_says_nothing_was_read(
    tmp_path: Path, llm_server: LLMDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    opening = asyncio.Event()

    async def slow_build(*args: Any, **kwargs: Any) -> Any:
        opening.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(console, "build_engine", slow_build)
    story = tmp_path / "inn.toml"
    story.write_text(TEST_STORY)
    out = io.StringIO()
    settings = console_settings(llm_server)
    task = asyncio.create_task(play(settings, str(story), [], None, io.StringIO("a: hi\n"), out))
    await asyncio.wait_for(opening.wait(), WAIT)
    task.cancel()  # what Ctrl-C does to the command
    with pytest.raises(asyncio.CancelledError):
        await task
    assert out.getvalue().splitlines() == [
        "! Stopping before the story opened: no input was read, none is kept."
    ]


async def test_player_names_ignore_case(tmp_path: Path, llm_server: LLMDouble) -> None:
    lines = await play_lines(tmp_path, llm_server, "alice: hi\nAlice: capital A\n\n")
    assert lines.count("! alice plays Ash") == 1
    assert not [line for line in lines if "already playing" in line]
    (scene,) = llm_server.calls("scene")
    assert "Ash: hi" in scene.prompt
    assert "Ash: capital A" in scene.prompt


async def test_unicode_and_overlong_player_names(tmp_path: Path, llm_server: LLMDouble) -> None:
    long = "a" * 33
    # सीता has vowel signs, combining marks that are not letters.
    script = f"Émile: bonjour\nI whisper: hush\nZoë: salut\nसीता: नमस्ते\n{long}: hello\n\n"
    lines = await play_lines(tmp_path, llm_server, script)
    assert "! Émile plays Ash" in lines
    assert "! Zoë plays Rowan" in lines
    assert [line for line in lines if line.startswith("! सीता plays")]
    assert (
        f"! {long!r} is not a player name: 1 to 32 letters, digits, - or _, starting with a "
        "letter. The line was not sent."
    ) in lines
    (scene,) = llm_server.calls("scene")
    assert "Ash: bonjour" in scene.prompt
    assert "Ash: I whisper: hush" in scene.prompt  # a sentence with a colon is text
    assert "सीता: नमस्ते" in scene.prompt
    assert "hello" not in scene.prompt  # refused, not taken as Zoë's text


async def test_out_of_character_lines_and_urls_are_not_players(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    script = (
        "ooc: brb\n"
        "alice: I open the door.\n"
        "OOC: back in five\n"
        "(( wrong door? ))\n"
        "// snack break\n"
        "[[ mute ]]\n"
        "alice: ((typo above))\n"
        "https://example.com/map.png\n"
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    assert lines.count("! Out of character: not sent to the story.") == 6
    assert [line for line in lines if " plays " in line] == ["! alice plays Ash"]
    assert not [line for line in lines if line.startswith("! Unknown command")]
    (scene,) = llm_server.calls("scene")
    assert "Ash: I open the door." in scene.prompt
    assert "Ash: https://example.com/map.png" in scene.prompt  # the last player's text
    for chat in ("brb", "back in five", "wrong door", "snack break", "mute", "typo above"):
        assert chat not in scene.prompt


async def test_character_names_are_not_new_players(tmp_path: Path, llm_server: LLMDouble) -> None:
    script = (
        "Mira: Welcome, travellers.\n"  # an NPC's name
        "bram: Down here!\n"  # an NPC's key
        "Rowan: I pray.\n"  # a suggested character nobody plays yet
        "alice: I wave.\n"
        "Vesna: Who let them in?\n"
        "/join mira Rowan\n"  # nor by joining: as with --players
        "/join rowan\n"  # a suggested character's name is a player's (as with --players)
        "rowan: I warm my hands.\n"
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    join = (
        "To join as a new player: /join NAME [CHARACTER] or /join NAME as CHARACTER: description."
    )
    not_sent = "is the name of a character, not a player: the line was not sent."
    assert f"! Mira {not_sent} {join}" in lines
    assert f"! Bram {not_sent} {join}" in lines
    assert f"! Rowan {not_sent} {join}" in lines
    assert f"! Vesna {not_sent} To write as alice, leave out the name. {join}" in lines
    assert "! Mira is the name of a character: pick another player name." in lines
    assert [line for line in lines if " plays " in line] == [
        "! alice plays Ash",
        "! rowan plays Rowan",
    ]
    (scene,) = llm_server.calls("scene")
    assert "Ash: I wave." in scene.prompt
    assert "Rowan: I warm my hands." in scene.prompt
    for text in ("Welcome, travellers", "Down here", "I pray", "Who let them in"):
        assert text not in scene.prompt


async def test_lookalikes_of_character_names_are_not_new_players(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    """The terminal compares names as the engine's join does: a name that reads as a
    character's, in fullwidth letters or in Cyrillic lookalikes, is that character's."""
    script = (
        "\u041c\u0456\u0433\u0430: Welcome, travellers.\n"  # Міга, all Cyrillic: reads Mira
        "\uff22\uff52\uff41\uff4d: Down here!\n"  # Ｂｒａｍ, fullwidth
        "\u0421\u0430\u0448\u0430: I wave.\n"  # Саша, nobody's name: a new player
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    join = (
        "To join as a new player: /join NAME [CHARACTER] or /join NAME as CHARACTER: description."
    )
    not_sent = "is the name of a character, not a player: the line was not sent."
    assert f"! \u041c\u0456\u0433\u0430 (Mira) {not_sent} {join}" in lines
    assert f"! \uff22\uff52\uff41\uff4d (Bram) {not_sent} {join}" in lines
    assert [line for line in lines if " plays " in line] == ["! \u0421\u0430\u0448\u0430 plays Ash"]
    (scene,) = llm_server.calls("scene")
    assert "Ash: I wave." in scene.prompt
    for text in ("Welcome, travellers", "Down here"):
        assert text not in scene.prompt


async def test_character_names_of_a_bundled_story(tmp_path: Path, llm_server: LLMDouble) -> None:
    story = (ROOT / "stories" / "last_map.toml").read_text()
    script = (
        "Corvin: Nobody leaves.\n"  # a word of an NPC's name, Corvin Hale
        "corvin_hale: Nobody at all.\n"  # its key
        "Surveyor: I unroll the chart.\n"  # a word of a suggested character's name
        "/join bob The Lockwarden Cadet\n"  # the README's examples
        "/join carol the_surveyor\n"
        "/join dave as Mara: a sailor\n"
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script, story_text=story)
    not_sent = "is the name of a character, not a player: the line was not sent."
    assert any(line.startswith(f"! Corvin (Corvin Hale) {not_sent}") for line in lines)
    assert any(line.startswith(f"! corvin_hale (Corvin Hale) {not_sent}") for line in lines)
    assert any(line.startswith(f"! Surveyor (The Surveyor) {not_sent}") for line in lines)
    assert [line for line in lines if " plays " in line] == [
        "! bob plays The Lockwarden Cadet",
        "! carol plays The Surveyor",
        "! dave plays Mara",
    ]
    assert not llm_server.calls("scene")


async def test_a_suggested_character_keeps_its_description(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    story = (ROOT / "stories" / "last_map.toml").read_text()
    script = "/join xi as The Marsh-Born: dup char\n/join xi as the marsh-born\n"
    lines = await play_lines(tmp_path, llm_server, script, story_text=story)
    assert lines[-2:] == [
        "! The Marsh-Born is one of the story's suggested characters and keeps its own "
        "description: join as The Marsh-Born without one, or give a character of your own "
        "another name.",
        "! xi plays The Marsh-Born",
    ]
    with sqlite3.connect(tmp_path / "game.db") as db:
        [(personality,)] = db.execute(
            "select personality from characters where key = 'the_marsh_born'"
        ).fetchall()
    assert personality.startswith("A grandchild of Greywater who left the stilt village")


async def test_join_refuses_the_names_players_refuses(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    """`/join NAME` checks a player name as `--players` does: a word of a story character's
    name (`Corvin` of Corvin Hale) is his; so is a character of one's own of that name."""
    story = (ROOT / "stories" / "last_map.toml").read_text()
    with pytest.raises(
        EngineError,
        match=r"^--players: nobody joined\. corvin \(Corvin Hale\) is the name of a character: "
        r"pick another player name\.$",
    ):
        await play_lines(tmp_path, llm_server, "", players=("corvin",), story_text=story)
    script = (
        "/join Corvin\n"
        "/join hale The Surveyor\n"
        "/join Pell as Doc: a doctor\n"
        "/join bob as Corvin: a twin\n"
        "/join bob as Sedge\n"
        "/join bob\n"
        "/rel corvin\n"
        "bob: I nod.\n"
        "\n"
    )
    llm_server.reply("scene", "Corvin: Nobody leaves.")
    lines = await play_lines(tmp_path, llm_server, script, story_text=story)
    taken = "is the name of a character: pick another player name."
    assert f"! Corvin (Corvin Hale) {taken}" in lines
    assert f"! hale (Corvin Hale) {taken}" in lines
    assert f"! Pell (Dr Amos Pell) {taken}" in lines
    assert "! Corvin (Corvin Hale) is a character of the story; pick another name." in lines
    assert "! Sedge (Mother Sedge) is a character of the story; pick another name." in lines
    assert [line for line in lines if " plays " in line] == ["! bob plays The Surveyor"]
    # `/rel corvin` is Corvin Hale's, and the model's `Corvin:` line is his, not taken for a
    # player's (which would drop it).
    assert "! Corvin Hale -> Dr Amos Pell (useful man): " in "\n".join(lines)
    assert lines[-1] == "Corvin Hale: Nobody leaves."
    (scene,) = llm_server.calls("scene")
    assert "The Surveyor: I nod." in scene.prompt


async def test_decomposed_names_are_the_composed_ones(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    script = (
        "E\u0301mile: bonjour\n"  # E + combining acute
        "\u00c9mile: encore\n"  # the one-letter É
        "/join Zoe\u0308 Rowan\n"
        "Zo\u00eb: salut\n"
        "/rel e\u0301mile\n"
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    assert [line for line in lines if " plays " in line] == [
        "! \u00c9mile plays Ash",
        "! Zo\u00eb plays Rowan",
    ]
    assert "! Mira -> Ash (acquaintance): trust +0.10, affection +0.00, familiarity 0.00" in lines
    (scene,) = llm_server.calls("scene")
    assert "Ash: bonjour" in scene.prompt
    assert "Ash: encore" in scene.prompt
    assert "Rowan: salut" in scene.prompt


async def test_narrator_and_new_players_once_suggested_characters_are_taken(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    script = (
        "narrator: The storm worsens.\n"
        "/join alice Ash\n"
        "/join bob Rowan\n"
        "Narrator: The roof leaks.\n"
        "zed: I stumble in, soaked.\n"
        "\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    join = "/join NAME [CHARACTER] or /join NAME as CHARACTER: description."
    refused = (
        "! Narrator is the story's own voice, not a player: the line was not sent. To join as a "
        f"new player: {join}"
    )
    assert lines.count(refused) == 2
    # Once Ash and Rowan are taken, a new player gets a character of their own, named after them.
    assert "! zed plays Zed (their own character: every suggested one is taken)" in lines
    (scene,) = llm_server.calls("scene")
    assert "Zed: I stumble in, soaked." in scene.prompt
    assert "storm worsens" not in scene.prompt
    assert "roof leaks" not in scene.prompt


async def test_empty_input_joins_nobody(tmp_path: Path, llm_server: LLMDouble) -> None:
    lines = await play_lines(tmp_path, llm_server, "dave:   \u200b\u3164\nerin: I wave.\n\n")
    assert "! There is nothing to say: the message is empty." in lines
    assert not [line for line in lines if line.startswith("! dave plays")]
    assert "! erin plays Ash" in lines  # dave took no suggested character


async def test_overlong_input_joins_nobody(tmp_path: Path, llm_server: LLMDouble) -> None:
    longest = "y" * 2_000  # the engine's default max_input_chars
    script = f"carol: {'x' * 2_001}\nerin: {longest}\nerin: {'z' * 2_001}\n\n"
    lines = await play_lines(tmp_path, llm_server, script)
    refused = (
        "! That is 2001 characters; keep one input to at most 2000 and split the rest. The line "
        "was not sent."
    )
    assert lines.count(refused) == 2
    assert [line for line in lines if " plays " in line] == ["! erin plays Ash"]
    # A server sets its own limit (MAX_INPUT_CHARS).
    lines = await play_lines(tmp_path, llm_server, f"dave: {'x' * 101}\n\n", max_input_chars=100)
    assert any("keep one input to at most 100" in line for line in lines)
    (scene,) = llm_server.calls("scene")
    assert f"Ash: {longest}" in scene.prompt
    assert "xxx" not in scene.prompt and "zzz" not in scene.prompt


async def test_join_with_a_chosen_or_own_character(tmp_path: Path, llm_server: LLMDouble) -> None:
    script = (
        "/join alice Rowan\n"
        "/join bob Rowan\n"
        "/join bob Captain\n"
        "/join bob as Mara the Bold: a sailor with one boot\n"
        "/join Bob ash\n"
        "/join carol as\n"
        "/characters\n"
        "/x\n"
    )
    lines = await play_lines(tmp_path, llm_server, script)
    assert "! alice plays Rowan" in lines
    assert "! Rowan is already played by alice." in lines
    assert (
        "! The Drowned Inn has no suggested character 'Captain'. Choices: Ash, Rowan (played "
        "by alice); or one of your own: /join bob as NAME: description"
    ) in lines
    assert "! bob plays Mara the Bold" in lines
    assert "! bob already plays Mara the Bold." in lines
    assert any(line.startswith("! Join with /join NAME") for line in lines)
    assert "! Mara the Bold [player] here" in lines
    assert any(line.startswith("! Unknown command /x. Commands: /join") for line in lines)


async def test_change_lines_show_values_and_names(tmp_path: Path, llm_server: LLMDouble) -> None:
    llm_server.reply(
        "director",
        json.dumps(
            {
                "summary": "The door gives; everyone goes down.",
                "flags": [
                    {"name": "door_open", "value": True, "reason": "forced"},
                    {"name": "coins", "value": 3, "reason": "found"},
                ],
                "scene": {"location": "cellar", "reason": "went down"},
            }
        ),
        json.dumps({"summary": "More coins.", "flags": {"coins": 5}}),
    )
    script = "alice: I force the door.\n\nalice: I count the coins.\n\n"
    lines = await play_lines(tmp_path, llm_server, script)
    assert "  ~ flag door_open: false -> true: forced" in lines
    assert "  ~ flag coins: (unset) -> 3: found" in lines
    assert "  ~ flag coins: 3 -> 5" in lines  # a number flag is a value, not a step
    assert "  ~ scene location: Common Hall -> Flooded Cellar: went down" in lines
    assert "  ~ location Ash: Common Hall -> Flooded Cellar: moved with the scene" in lines
    assert (
        "  ~ episode Escape the Storm / The Cellar Door: active -> completed: its goal is reached"
    ) in lines
    assert "  ~ arc A Bond: locked -> active: the arc's opening condition holds" in lines
    # A flag that was false and is now 0 changed kind, not by a step of +0.00.
    flag = ChangeView("flag", "corvin_exposed", False, 0, "", "director")
    assert flag.describe() == "flag corvin_exposed: false -> 0"


async def test_rel_by_player_name_and_without_relationships(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    script = "/join bob Ash\n/rel bob\n/rel bram\n/rel nobody\n"
    lines = await play_lines(tmp_path, llm_server, script)
    assert "! Mira -> Ash (acquaintance): trust +0.10, affection +0.00, familiarity 0.00" in lines
    assert "! Bram has no relationships yet." in lines
    assert any(line.startswith("! There is no character called 'nobody'") for line in lines)


async def test_retry_says_which_turn_was_rewritten(tmp_path: Path, llm_server: LLMDouble) -> None:
    llm_server.reply("scene", "Narrator: First take.", "Narrator: Second take.")
    lines = await play_lines(tmp_path, llm_server, "alice: I knock.\n\n/retry\n/undo\n")
    assert lines[-3:] == ["Narrator: Second take.", "! Turn 1 rewritten", "! Turn 1 undone"]


async def test_retry_after_a_failed_attempt_says_the_turn_is_written(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    llm_server.fail("scene", "500")  # the first attempt of turn 1 fails
    llm_server.reply("scene", "Narrator: The door creaks.")
    lines = await play_lines(tmp_path, llm_server, "alice: I knock.\n\n/retry\n")
    assert any(line.startswith("! The story could not continue") for line in lines)
    assert lines[-2:] == ["Narrator: The door creaks.", "! Turn 1 written"]


async def test_undo_and_retry_wait_for_lines_not_sent_yet(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Narrator: One.", "Narrator: Two.")
    script = "alice: one\n\nalice: two\nbob: too\n/retry\n/undo\n\n"
    lines = await play_lines(tmp_path, llm_server, script)
    for command in ("retry", "undo"):
        assert (
            f"! /{command} not done: lines from alice, bob are not sent yet (they are kept). "
            "Send them with a blank line first; /undo and /retry act on turns already sent."
        ) in lines
    assert not [line for line in lines if line.startswith("! Turn ")]  # nothing retried, undone
    # Nothing was lost: the blank line sent both lines as turn 2.
    assert lines[-1] == "Narrator: Two."
    first, second = llm_server.calls("scene")
    assert "Ash: one" in first.prompt and "Ash: two" not in first.prompt
    assert "Ash: two" in second.prompt and "Rowan: too" in second.prompt


async def test_commands_ignore_case_and_refuse_arguments_they_do_not_take(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    llm_server.reply("scene", "Narrator: The door creaks.")
    script = "alice: I knock.\n\n/undo now please\n/UNDO 3\n/Retry again\n/quit now\n/LOOK\n"
    lines = await play_lines(tmp_path, llm_server, script)
    undo = "! /undo takes no arguments: it takes back the last turn. Nothing was done."
    assert lines.count(undo) == 2  # also /UNDO
    assert "! /retry takes no arguments: it writes the last turn again. Nothing was done." in lines
    assert "! /quit takes no arguments: it ends the session. Nothing was done." in lines
    assert any(line.startswith("! Common Hall — ") for line in lines)  # /LOOK is /look
    assert not [line for line in lines if line.startswith("! Unknown command")]
    assert not [line for line in lines if line.startswith("! Turn ")]  # nothing undone, retried
    assert len(llm_server.calls("scene")) == 1


async def test_control_characters_never_reach_the_terminal(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    # From the model, the player, a story file (TOML escapes) and an unknown command's name.
    llm_server.reply("scene", "Narrator: A\x00 bell\x07 and \x1b[31mred\x1b[0m, \x9b2J gone.")
    opening = 'opening = "Rain hammers the shutters of the Drowned Inn."'
    story = TEST_STORY.replace(opening, 'opening = "Rain\\u0007 \\u001b[2Jfalls\\u009b."')
    script = "alice: bell\x07 esc\x1b[2J\n\n/recap\n/x\x1b[2J\x7f\n"
    lines = await play_lines(tmp_path, llm_server, script, story_text=story)
    text = "\n".join(lines)
    assert not [c for c in text if c != "\n" and (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F)]
    # Shown as U+FFFD, not dropped: the rest stays readable and escape sequences are inert.
    assert "Narrator: Rain\ufffd \ufffd[2Jfalls\ufffd." in lines
    assert any(line.startswith("! Unknown command /x\ufffd[2J\ufffd. Commands:") for line in lines)
    assert any(line.startswith("Narrator: A") and "bell" in line for line in lines)
    assert any(line.startswith("! Ash: bell") and "esc" in line for line in lines)


async def test_quit_keeps_waiting_input(tmp_path: Path, llm_server: LLMDouble) -> None:
    lines = await play_lines(tmp_path, llm_server, "alice: I knock.\nbob: I wait.\n/quit\n")
    assert lines[-1] == (
        "! 2 inputs from alice, bob not answered yet: kept, and answered when you run this "
        "command again."
    )
    assert not llm_server.calls("scene")
    llm_server.reply("scene", "Narrator: The door opens.")
    lines = await play_lines(tmp_path, llm_server, "")
    assert lines == ["! Continuing The Drowned Inn after turn 0", "Narrator: The door opens."]
    (scene,) = llm_server.calls("scene")
    assert "Ash: I knock." in scene.prompt and "Rowan: I wait." in scene.prompt


class ClosedAfter(io.StringIO):
    """Standard output whose reader goes away (`play ... | head -3`) after `lines` lines."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= self.lines:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


async def test_closed_output_stops_the_session(tmp_path: Path, llm_server: LLMDouble) -> None:
    # The first turn's post is the fourth line, and the output closes after it: the
    # change line is not printed, the turn is stored all the same, and the session stops as
    # /quit does: the next lines are not read, and nothing raises from the sink or the loop.
    llm_server.reply("scene", "Narrator: Thunder rolls.")
    llm_server.reply(
        "director",
        json.dumps({"relationships": [{"source": "mira", "target": "ash", "trust": 0.1}]}),
    )
    story = tmp_path / "inn.toml"
    story.write_text(TEST_STORY)
    out = ClosedAfter(4)
    script = "alice: I knock.\n\nalice: I wait.\nbob: I listen.\n\n"
    code = await asyncio.wait_for(
        play(
            console_settings(llm_server),
            str(story),
            [],
            f"sqlite+aiosqlite:///{tmp_path / 'game.db'}",
            io.StringIO(script),
            out,
        ),
        WAIT,
    )
    assert code == console.EXIT_OUTPUT_CLOSED == 141
    assert out.getvalue().splitlines()[-1] == "Narrator: Thunder rolls."
    assert len(llm_server.calls("scene")) == 1
    with sqlite3.connect(tmp_path / "game.db") as db:
        assert db.execute("select status from turns").fetchall() == [("done",)]


async def test_closed_output_exits_without_a_traceback(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads what the process prints: its first line fails
    try:
        process = await start_play(tmp_path, llm_server, "--players", "alice", stdout=write_end)
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(b"alice: I knock.\n\n"), WAIT)
    assert process.returncode == 141, err.decode()
    assert err.decode() == ""
    assert not llm_server.calls("scene")
