"""Runtime settings, read from the environment and an optional `.env` file.

Every variable is documented in `.env.example`. Secrets are `SecretStr` so they never show in
logs or reprs. `load_settings()` turns validation failures into `SettingsError`, whose text names
each bad variable on one line, so the entry point can print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/dreamwalkers.db"


class SettingsError(Exception):
    """A missing or malformed setting; `str()` names the variable and is safe to print."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # Discord
    discord_token: SecretStr | None = None
    dev_guild_id: int | None = Field(default=None, gt=0)
    # Discord-compatible servers (and the test double): REST base and gateway URL.
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    # Sharding (design §9): how many shards the bot has, and which of them this process runs
    # ("0-3" or "0,2,5"), so that several processes can share a large bot.
    discord_shard_count: int | None = Field(default=None, ge=1, le=10_000)
    discord_shards: str | None = None  # read through `shard_ids`

    # LLM endpoint (any OpenAI-compatible server)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_director_model: str | None = None
    llm_json_mode: Literal["json_schema", "json_object", "text"] = "json_schema"
    llm_temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    llm_max_tokens: int = Field(default=800, ge=16, le=32_000)
    llm_context_tokens: int = Field(default=8_000, ge=1_000, le=2_000_000)
    llm_connect_timeout: float = Field(default=10.0, gt=0)
    llm_read_timeout: float = Field(default=60.0, gt=0)
    llm_deadline: float = Field(default=180.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_concurrency: int = Field(default=4, ge=1, le=256)

    # Storage and content
    database_url: str = DEFAULT_DATABASE_URL
    stories_dir: Path = Path("stories")

    # Play
    collect_window_seconds: float = Field(default=2.0, ge=0.0, le=60.0)
    # One player's message; Discord's own limit is 2,000 (4,000 with Nitro).
    max_input_chars: int = Field(default=2000, ge=100, le=4000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("discord_shards")
    @classmethod
    def _check_shards(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard_list(value)
        return value

    @property
    def shard_ids(self) -> tuple[int, ...] | None:
        """The shards this process runs; None for all of them."""
        return None if self.discord_shards is None else parse_shard_list(self.discord_shards)

    @model_validator(mode="after")
    def _shards_within_count(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.discord_shard_count is None:
            raise ValueError("DISCORD_SHARDS needs DISCORD_SHARD_COUNT (the bot's total shards)")
        outside = [s for s in self.shard_ids if s >= self.discord_shard_count]
        if outside:
            raise ValueError(
                f"DISCORD_SHARDS names shard {outside[0]}, but DISCORD_SHARD_COUNT is "
                f"{self.discord_shard_count} (shards are numbered from 0)"
            )
        return self

    def require_discord_token(self) -> str:
        if self.discord_token is None or not self.discord_token.get_secret_value().strip():
            raise SettingsError(
                "DISCORD_TOKEN is not set: put your bot token in the environment or in .env "
                "(see .env.example)"
            )
        return self.discord_token.get_secret_value()


def parse_shard_list(text: str) -> tuple[int, ...]:
    """`"0-3"` or `"0,2,5"` (or both: `"0-1,4"`) as sorted shard ids without repeats."""
    ids: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            wanted = "shard numbers like 0-3 or 0,2,5"
            raise ValueError(f"expected {wanted}, not {part.strip()!r}") from None
        if low < 0 or high < low:
            raise ValueError(f"{part.strip()!r} is not a range of shard numbers")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        if not item["loc"]:  # a check across variables: its message names them, and the
            # input is every setting, secrets included
            lines.append(item["msg"].removeprefix("Value error, "))
            continue
        name = "_".join(str(part) for part in item["loc"]).upper()
        value = item.get("input")
        shown = "" if name in {"DISCORD_TOKEN", "OPENAI_API_KEY"} else f" (got {value!r})"
        lines.append(f"{name}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and `.env`), raising `SettingsError` on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
