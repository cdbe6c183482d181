"""Per-server settings: the GM role, the model, the collect window, change lines, log channel."""

from __future__ import annotations

from dataclasses import dataclass

from engine.db import models as m
from engine.errors import InvalidInput
from engine.usecases.base import EngineCore

MAX_COLLECT_WINDOW = 30.0


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    gm_role_id: int | None
    model: str | None
    collect_window_seconds: float | None
    show_changes: bool
    log_channel_id: int | None


_UNSET = object()


def _view(guild_id: int, row: m.GuildConfig | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id, None, None, None, True, None)
    return GuildSettings(
        guild_id,
        row.gm_role_id,
        row.model,
        row.collect_window_seconds,
        row.show_changes,
        row.log_channel_id,
    )


class GuildUseCases(EngineCore):
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self.db.read() as session:
            return _view(guild_id, await session.get(m.GuildConfig, guild_id))

    async def update_guild_settings(
        self,
        guild_id: int,
        user_id: int,
        *,
        gm_role_id: int | object | None = _UNSET,
        model: str | object | None = _UNSET,
        collect_window_seconds: float | object | None = _UNSET,
        show_changes: bool | object = _UNSET,
        log_channel_id: int | object | None = _UNSET,
    ) -> GuildSettings:
        """Change the given settings (None clears one back to the default)."""
        changes = {
            "gm_role_id": gm_role_id,
            "model": model,
            "collect_window_seconds": collect_window_seconds,
            "show_changes": show_changes,
            "log_channel_id": log_channel_id,
        }
        changes = {k: v for k, v in changes.items() if v is not _UNSET}
        window = changes.get("collect_window_seconds")
        if isinstance(window, int | float) and not 0 <= window <= MAX_COLLECT_WINDOW:
            raise InvalidInput(f"The collect window must be 0 to {MAX_COLLECT_WINDOW:g} seconds.")
        name = changes.get("model")
        if isinstance(name, str) and not 0 < len(name.strip()) <= 200:
            raise InvalidInput("A model name needs 1 to 200 characters.")
        async with self.db.write() as session:
            row = await session.get(m.GuildConfig, guild_id)
            if row is None:
                row = m.GuildConfig(guild_id=guild_id, show_changes=True, options={})
                session.add(row)
            for field, value in changes.items():
                setattr(row, field, value.strip() if isinstance(value, str) else value)
            session.add(
                m.EventLog(
                    guild_id=guild_id,
                    kind="edit",
                    summary="server settings changed",
                    data={"user_id": user_id, "fields": sorted(changes)},
                )
            )
            await session.flush()
            view = _view(guild_id, row)
        self.collect_windows.update_guild(guild_id, view.collect_window_seconds)
        self.guild_models[guild_id] = view.model
        return view
