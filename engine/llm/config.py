"""LLM settings as the gateway needs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.settings import Settings

JsonMode = Literal["json_schema", "json_object", "text"]


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None
    api_key: str | None
    model: str
    director_model: str | None = None
    json_mode: JsonMode = "json_schema"
    temperature: float = 0.8
    max_tokens: int = 800
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline: float = 180.0
    max_retries: int = 2
    concurrency: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            model=settings.llm_model,
            director_model=settings.llm_director_model,
            json_mode=settings.llm_json_mode,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            connect_timeout=settings.llm_connect_timeout,
            read_timeout=settings.llm_read_timeout,
            deadline=settings.llm_deadline,
            max_retries=settings.llm_max_retries,
            concurrency=settings.llm_concurrency,
        )
