"""Alembic environment, async (SQLAlchemy's asyncio template).

Two ways in: the `alembic` command line, which takes the URL from the application settings
(DATABASE_URL) and runs migrations on a fresh async engine; or the application
(`engine.db.migrate`), which hands over an open connection in `config.attributes`.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from engine.db.database import create_engine
from engine.db.models import Base
from engine.settings import load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The full-text index of memories (and FTS5's own tables) is made by a migration with
    # SQL of its own; the models do not describe it, so comparing must leave it out.
    return not (type_ == "table" and name is not None and name.startswith("memories_fts"))


def _configure(connection: Connection | None = None) -> None:
    options = dict(
        target_metadata=target_metadata,
        include_name=_include_name,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode recreates tables.
        compare_type=True,
    )
    if connection is None:
        context.configure(url=_url(), literal_binds=True, **options)
    else:
        context.configure(connection=connection, **options)


def run_migrations_offline() -> None:
    _configure()
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
