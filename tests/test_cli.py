"""The command line as a user runs it: `python -m bot ...` in a fresh folder."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARIABLES = (
    "DISCORD_TOKEN",
    "DEV_GUILD_ID",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DATABASE_URL",
    "STORIES_DIR",
    "DISCORD_SHARD_COUNT",
    "DISCORD_SHARDS",
)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in SETTINGS_VARIABLES and not key.startswith("LLM_")
    }
    clean["PYTHONPATH"] = str(ROOT)
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_describes_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "migrate", "validate"):
        assert command in result.stdout
    result = run_cli("validate", "--help", cwd=tmp_path)
    assert "story files" in result.stdout


def test_run_without_token_names_the_variable(tmp_path: Path) -> None:
    result = run_cli("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("run", cwd=tmp_path, env={"DISCORD_TOKEN": "x", "LLM_TEMPERATURE": "hot"})
    assert result.returncode == 2
    assert "LLM_TEMPERATURE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("shards", "count", "said"),
    [
        ("0-3", None, "DISCORD_SHARDS needs DISCORD_SHARD_COUNT"),
        ("0,4", "4", "DISCORD_SHARDS names shard 4, but DISCORD_SHARD_COUNT is 4"),
        ("first", "4", "DISCORD_SHARDS: Value error, expected shard numbers like 0-3"),
    ],
)
def test_bad_shard_settings_say_what_is_wrong(
    tmp_path: Path, shards: str, count: str | None, said: str
) -> None:
    env = {"DISCORD_TOKEN": "secret-token-value", "DISCORD_SHARDS": shards}
    if count is not None:
        env["DISCORD_SHARD_COUNT"] = count
    result = run_cli("run", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert said in result.stderr
    assert "secret-token-value" not in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_are_read_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEV_GUILD_ID=not-a-number\n")
    result = run_cli("migrate", cwd=tmp_path)
    assert result.returncode == 2
    assert "DEV_GUILD_ID" in result.stderr


def test_migrate_creates_the_database_in_an_empty_folder(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    database = tmp_path / "data" / "dreamwalkers.db"
    assert database.exists()
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    assert {"playthroughs", "characters", "relationships", "turns", "messages"} <= tables
    # Running it again is harmless.
    assert run_cli("migrate", cwd=tmp_path).returncode == 0


def test_unusable_database_url_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": "nonsense://"})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["play", "migrate"])
@pytest.mark.parametrize("kind", ["folder", "not sqlite", "no driver"])
def test_unusable_database_is_one_clear_line(tmp_path: Path, command: str, kind: str) -> None:
    # A --db that is a folder or a file that is not SQLite, or a DATABASE_URL whose driver
    # is not installed: one line naming where the URL came from, no traceback.
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    args = ["play", str(ROOT / "stories" / "last_map.toml")] if command == "play" else [command]
    source, said, code = "--db", "cannot open the database", 1
    if kind == "folder":
        database = tmp_path / "a-folder"
        database.mkdir()
    else:
        database = tmp_path / "notes.db"
        database.write_text("not a database\n")
    if kind == "no driver":
        if importlib.util.find_spec("asyncpg") is not None:
            pytest.skip("asyncpg is installed here")
        env["DATABASE_URL"] = "postgresql+asyncpg://user:secret-password@127.0.0.1:9/x"
        source, said, code = "DATABASE_URL", "the database driver is not installed", 2
    elif command == "play":
        args += ["--db", str(database)]
    else:
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
        source = "DATABASE_URL"
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {source}: {said}"), result.stderr
    assert "secret-password" not in result.stderr
    assert result.stdout == ""


def test_validate_bundled_stories_prints_a_summary_per_story(tmp_path: Path) -> None:
    result = run_cli("validate", str(ROOT / "stories"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(list((ROOT / "stories").glob("*.toml")))
    assert all(re.search(r"\d+ characters?, \d+ locations?, \d+ arcs?", line) for line in lines)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[story\n", "TOML syntax error"),
        ('[story]\ntitle = "x"\n', "story: start_location: is required but missing"),
        ("[[locations]]\nkey = 3\n", "locations[0]: key: Input should be a valid string"),
    ],
)
def test_validate_broken_file_names_file_and_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    story = tmp_path / "broken.toml"
    story.write_text(content)
    result = run_cli("validate", str(story), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{story}: " in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_print_no_escape_sequences(tmp_path: Path) -> None:
    # A story file name (or its fields) could hold what a terminal would run.
    result = run_cli("validate", "no\x1b[2Jwhere.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    assert "no[2Jwhere.toml: no such file or folder" in result.stderr


def test_validate_missing_path(tmp_path: Path) -> None:
    result = run_cli("validate", "nowhere.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "nowhere.toml: no such file or folder" in result.stderr
