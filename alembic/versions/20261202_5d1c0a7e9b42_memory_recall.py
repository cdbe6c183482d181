"""memory recall: an importance index and, on SQLite with FTS5, a full-text index of memories

Also repairs the kind of the turn summaries stored so far (see upgrade()).

Revision ID: 5d1c0a7e9b42
Revises: ef4e83849a5a
Create Date: 2026-12-02 00:45:00

The full-text index is an external-content FTS5 table over `memories` (content and
playthrough id), kept in step by triggers, so every insert and delete of a memory (a turn's
summary, an undo, a story's deletion by cascade) reaches it without engine code. It is made
only on SQLite builds with FTS5; elsewhere recall falls back to the importance index.
Note for later migrations: batch mode recreates a table it alters, which drops its
triggers, so a migration that alters `memories` must make these triggers again.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5d1c0a7e9b42'
down_revision: Union[str, None] = 'ef4e83849a5a'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FTS_STATEMENTS = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5("
    "content, playthrough_id, content='memories', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, content, playthrough_id) "
    "VALUES (new.id, new.content, new.playthrough_id); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, content, playthrough_id) "
    "VALUES ('delete', old.id, old.content, old.playthrough_id); END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, playthrough_id ON memories "
    "BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, content, playthrough_id) "
    "VALUES ('delete', old.id, old.content, old.playthrough_id); "
    "INSERT INTO memories_fts(rowid, content, playthrough_id) "
    "VALUES (new.id, new.content, new.playthrough_id); END",
    "INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')",
)


def _has_fts5() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
    except sa.exc.OperationalError:
        return False
    bind.exec_driver_sql("DROP TABLE temp.fts5_probe")
    return True


def upgrade() -> None:
    # Until this revision the engine's prepared insert let the column default ("fact")
    # override the kind it gave, so every turn summary was stored as kind "fact". Turn
    # summaries are the only memories the engine has written, so they are all summaries.
    op.execute("UPDATE memories SET kind = 'summary' WHERE kind = 'fact'")
    with op.batch_alter_table('memories', schema=None) as batch_op:
        batch_op.create_index('ix_memories_playthrough_kind_importance', ['playthrough_id', 'kind', 'importance'], unique=False)
    if _has_fts5():
        for statement in FTS_STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS memories_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS memories_fts")
    with op.batch_alter_table('memories', schema=None) as batch_op:
        batch_op.drop_index('ix_memories_playthrough_kind_importance')
