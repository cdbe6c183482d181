"""The engine's one entry point for front ends: `Engine` combines every group of use cases.

Front ends build it with a database, the story catalog, an LLM gateway and an output sink,
call `recover()` once at start, and `close()` at the end. Every method speaks in plain ids and
returns frozen dataclasses from `engine.results`; user mistakes raise `EngineError`
subclasses whose text can be shown as is.
"""

from __future__ import annotations

from engine.usecases.guilds import GuildUseCases
from engine.usecases.moderation import ModerationUseCases
from engine.usecases.players import PlayerUseCases
from engine.usecases.playthroughs import PlaythroughUseCases
from engine.usecases.turns import TurnUseCases
from engine.usecases.views import ViewUseCases


class Engine(
    PlaythroughUseCases,
    PlayerUseCases,
    ViewUseCases,
    ModerationUseCases,
    TurnUseCases,
    GuildUseCases,
):
    async def close(self, *, cancel_running: bool = False) -> None:
        """Stop the channel workers; unfinished turns resume at the next start."""
        await self.dispatcher.close(cancel_running=cancel_running)
        await self.chapters.close()
