"""Building the engine from settings: the composition root shared by every front end."""

from __future__ import annotations

import asyncio
import logging

from engine.db import Database
from engine.db.migrate import upgrade_to_head
from engine.facade import Engine
from engine.llm import LLMConfig, LLMGateway
from engine.settings import Settings
from engine.sink import OutputSink
from engine.stories import StoryCatalog, load_catalog
from engine.usecases.base import EngineOptions

log = logging.getLogger(__name__)


async def load_stories(settings: Settings) -> StoryCatalog:
    catalog = await asyncio.to_thread(load_catalog, settings.stories_dir)
    for problem in catalog.problems:
        log.warning("story not loaded: %s", problem)
    return catalog


async def build_engine(
    settings: Settings,
    sink: OutputSink,
    *,
    catalog: StoryCatalog | None = None,
    database_url: str | None = None,
    collect_window_seconds: float | None = None,
) -> Engine:
    """Migrate the database, load the stories and wire the engine. Call `close_engine` after."""
    db = Database(database_url or settings.database_url)
    try:
        await upgrade_to_head(db.engine)
        catalog = catalog or await load_stories(settings)
    except BaseException:
        await db.close()
        raise
    options = EngineOptions(
        collect_window_seconds=(
            settings.collect_window_seconds
            if collect_window_seconds is None
            else collect_window_seconds
        ),
        context_tokens=settings.llm_context_tokens,
        max_input_chars=settings.max_input_chars,
    )
    gateway = LLMGateway(LLMConfig.from_settings(settings))
    return Engine(db, catalog, gateway, sink, options)


async def close_engine(engine: Engine, *, cancel_running: bool = False) -> None:
    """Stop the workers, then close the LLM client and the database."""
    try:
        await engine.close(cancel_running=cancel_running)
    finally:
        await engine.gateway.close()
        await engine.db.close()
