"""Pytest fixtures for the Discord double. Registered in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .double import DiscordDouble


@pytest.fixture
async def discord_double() -> AsyncIterator[DiscordDouble]:
    """A started double with discord.py pointed at it (URLs restored afterwards)."""
    double = DiscordDouble()
    await double.start()
    try:
        with double.patched():
            yield double
    finally:
        await double.close()
