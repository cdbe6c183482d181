"""The `llm_server` fixture: a started LLMDouble, stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm_double.server import LLMDouble


@pytest.fixture
async def llm_server() -> AsyncIterator[LLMDouble]:
    server = await LLMDouble().start()
    try:
        yield server
    finally:
        await server.stop()
