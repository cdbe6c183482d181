"""`python -m bot sync` as a separate process against the Discord double: the slash commands
are registered globally and the command says how many."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.discord_double import DiscordDouble
from tests.engine_support import TEST_STORY
from tests.test_bot_process import ROOT, WAIT


async def sync(tmp_path: Path, double: DiscordDouble, token: str) -> tuple[int, str, str]:
    (tmp_path / "stories").mkdir(exist_ok=True)
    (tmp_path / "stories" / "inn.toml").write_text(TEST_STORY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DEV_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": token,
            "DISCORD_API_BASE": double.api_base,
            "DISCORD_GATEWAY_URL": double.gateway_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "STORIES_DIR": str(tmp_path / "stories"),
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "sync",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_sync_registers_the_commands_globally(
    tmp_path: Path, discord_double: DiscordDouble
) -> None:
    code, out, err = await sync(tmp_path, discord_double, discord_double.token)
    assert code == 0, err[-2000:]
    registered = {c["name"] for c in discord_double.world.commands.get(None, [])}
    assert {"story", "join", "say", "do", "look", "gm"} <= registered
    assert f"Synced {len(registered)} commands globally" in out
    assert discord_double.token not in out + err


async def test_sync_with_a_refused_token_is_a_configuration_error(
    tmp_path: Path, discord_double: DiscordDouble
) -> None:
    code, _, err = await sync(tmp_path, discord_double, "not-the-token")
    assert code == 2
    assert "DISCORD_TOKEN was refused" in err and "Traceback" not in err
