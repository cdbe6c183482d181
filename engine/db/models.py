"""The data model (design §2) as SQLAlchemy 2.0 typed models.

Discord ids are stored as BIGINT (they exceed 32 bits). Relationships between rows are loaded
explicitly: every `relationship()` is `lazy="raise"`, so a query that forgets `selectinload`
fails loudly in tests instead of issuing hidden I/O. Every model change needs an Alembic
migration; `alembic check` in the tests keeps them in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Status values, kept as plain strings so SQLite and PostgreSQL store them alike.
PLAYTHROUGH_STATUSES = ("active", "paused", "ended")
TURN_STATUSES = ("done", "failed", "undone")
MESSAGE_KINDS = ("player", "narrator", "character", "system")
ARC_STATUSES = ("locked", "active", "completed")
KNOWLEDGE_SOURCES = ("witnessed", "told", "story")
EVENT_KINDS = ("ai_decision", "context", "edit", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Story(Base):
    """A parsed story file, stored by content hash so a playthrough keeps the version it began."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(48), index=True)
    title: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source_path: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Playthrough(Base):
    __tablename__ = "playthroughs"
    __table_args__ = (
        # At most one live (active or paused) playthrough per channel or thread.
        Index(
            "uq_playthroughs_live_channel",
            "channel_id",
            unique=True,
            sqlite_where=text("status != 'ended'"),
            postgresql_where=text("status != 'ended'"),
        ),
        Index("ix_playthroughs_guild_status", "guild_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"))
    guild_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    story: Mapped[Story] = relationship(lazy="raise")


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("playthrough_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="SET NULL"))


class Character(Base):
    """A story character (or a player character) with its mutable state in one playthrough."""

    __tablename__ = "characters"
    __table_args__ = (
        UniqueConstraint("playthrough_id", "key"),
        Index("ix_characters_playthrough_present", "playthrough_id", "present"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="npc")
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    appearance: Mapped[str] = mapped_column(Text, default="")
    personality: Mapped[str] = mapped_column(Text, default="")
    traits: Mapped[list[Any]] = mapped_column(default=list)
    speech: Mapped[str] = mapped_column(Text, default="")
    backstory: Mapped[str] = mapped_column(Text, default="")
    mood: Mapped[str] = mapped_column(String(200), default="")
    intent: Mapped[str] = mapped_column(Text, default="")
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="SET NULL"))
    present: Mapped[bool] = mapped_column(Boolean, default=False)


class Player(Base):
    """A Discord user playing a player character in a playthrough."""

    __tablename__ = "players"
    __table_args__ = (
        Index(
            "uq_players_active_user",
            "playthrough_id",
            "user_id",
            unique=True,
            sqlite_where=text("left_at IS NULL"),
            postgresql_where=text("left_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(200))
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    character: Mapped[Character] = relationship(lazy="raise")


class Scene(Base):
    __tablename__ = "scenes"

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(
        ForeignKey("playthroughs.id", ondelete="CASCADE"), unique=True
    )
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="SET NULL"))
    time_of_day: Mapped[str] = mapped_column(String(200), default="")
    weather: Mapped[str] = mapped_column(String(200), default="")
    tone: Mapped[str] = mapped_column(String(200), default="")


class Relationship(Base):
    """How `source` feels about `target` (directed)."""

    __tablename__ = "relationships"
    __table_args__ = (UniqueConstraint("playthrough_id", "source_id", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(200), default="acquaintance")
    trust: Mapped[float] = mapped_column(Float, default=0.0)
    affection: Mapped[float] = mapped_column(Float, default=0.0)
    familiarity: Mapped[float] = mapped_column(Float, default=0.0)
    history: Mapped[list[Any]] = mapped_column(default=list)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("playthrough_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(48))
    # JSON so a flag keeps its type (bool, number or text).
    value: Mapped[Any] = mapped_column(JSON)
    set_by: Mapped[str] = mapped_column(String(32), default="story")
    set_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    set_at_turn: Mapped[int] = mapped_column(Integer, default=0)


class ArcState(Base):
    __tablename__ = "arc_states"
    __table_args__ = (UniqueConstraint("playthrough_id", "arc_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    arc_key: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16), default="locked")
    started_turn: Mapped[int | None] = mapped_column(Integer)
    completed_turn: Mapped[int | None] = mapped_column(Integer)


class EpisodeState(Base):
    __tablename__ = "episode_states"
    __table_args__ = (UniqueConstraint("arc_state_id", "episode_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(
        ForeignKey("playthroughs.id", ondelete="CASCADE"), index=True
    )
    arc_state_id: Mapped[int] = mapped_column(ForeignKey("arc_states.id", ondelete="CASCADE"))
    episode_key: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16), default="locked")
    started_turn: Mapped[int | None] = mapped_column(Integer)
    completed_turn: Mapped[int | None] = mapped_column(Integer)


class Knowledge(Base):
    """A fact one character knows, and how it came to know it."""

    __tablename__ = "knowledge"
    __table_args__ = (
        Index("ix_knowledge_character_source_turn", "character_id", "source", "turn_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    fact: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="witnessed")
    turn_number: Mapped[int] = mapped_column(Integer, default=0)
    certainty: Mapped[float] = mapped_column(Float, default=1.0)


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("playthrough_id", "number"),
        Index("ix_turns_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    context_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """One transcript line. Player input is stored with no turn until a turn takes it."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_playthrough_turn", "playthrough_id", "turn_id"),
        Index("ix_messages_playthrough_id", "playthrough_id", "id"),
        Index(
            "ix_messages_pending_input",
            "playthrough_id",
            sqlite_where=text("turn_id IS NULL"),
            postgresql_where=text("turn_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(BigInteger)
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL")
    )
    speaker_name: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    # Unique so a message delivered twice (gateway replay, restart) is stored once.
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Change(Base):
    """One state change, by a turn or a moderator, with the values before and after."""

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_turn", "turn_id"),
        Index("ix_changes_playthrough_created", "playthrough_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[Any] = mapped_column(JSON)
    after: Mapped[Any] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(32))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    reverted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Memory(Base):
    __tablename__ = "memories"
    __table_args__ = (
        # Summaries are read newest first by turn (prompts, recaps), and the most important
        # older ones are recalled (engine.turns.memory). On SQLite the full-text index
        # `memories_fts` (made by a migration, kept by triggers) finds the relevant ones.
        Index("ix_memories_playthrough_kind_turn", "playthrough_id", "kind", "turn_to"),
        Index("ix_memories_playthrough_kind_importance", "playthrough_id", "kind", "importance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int] = mapped_column(ForeignKey("playthroughs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="fact")
    content: Mapped[str] = mapped_column(Text)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    turn_from: Mapped[int | None] = mapped_column(Integer)
    turn_to: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_accessed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventLog(Base):
    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_playthrough_created", "playthrough_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    playthrough_id: Mapped[int | None] = mapped_column(
        ForeignKey("playthroughs.id", ondelete="CASCADE")
    )
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GuildConfig(Base):
    __tablename__ = "guild_configs"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    gm_role_id: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(200))
    collect_window_seconds: Mapped[float | None] = mapped_column(Float)
    show_changes: Mapped[bool] = mapped_column(Boolean, default=True)
    log_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
