"""LLM settings as the gateway needs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.settings import Settings

JsonMode = Literal["json_schema", "json_object", "text"]
JSON_MODES: tuple[JsonMode, ...] = ("json_schema", "json_object", "text")


@dataclass(frozen=True)
class LLMConfig:
    """Endpoint, models and limits of the LLM gateway. Times are in seconds.

    `api_key` None means the endpoint needs none (a placeholder is sent). `director_model`
    None means the director calls use `model`. `deadline` is the hard wall-clock limit of one
    call once it holds one of the `concurrency` slots; `max_retries` is the openai client's
    (429, 5xx, connection errors and timeouts).
    """

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

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError("LLMConfig.model must not be empty")
        if self.json_mode not in JSON_MODES:
            raise ValueError(f"LLMConfig.json_mode must be one of {', '.join(JSON_MODES)}")
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LLMConfig.{name} must be positive")
        if self.max_retries < 0:
            raise ValueError("LLMConfig.max_retries must not be negative")
        if self.concurrency < 1:
            raise ValueError("LLMConfig.concurrency must be at least 1")

    @property
    def director(self) -> str:
        """The model of director (structured) calls."""
        return self.director_model or self.model

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            base_url=settings.openai_base_url,
            api_key=key or None,
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

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        key = "set" if self.api_key else "none"
        return (
            f"LLMConfig(base_url={self.base_url!r}, api_key=<{key}>, model={self.model!r}, "
            f"director_model={self.director_model!r}, json_mode={self.json_mode!r}, "
            f"deadline={self.deadline}, max_retries={self.max_retries}, "
            f"concurrency={self.concurrency})"
        )
