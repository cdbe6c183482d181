"""Shared pytest configuration. Test doubles register their fixtures here as plugins."""

pytest_plugins: list[str] = [
    "tests.discord_double.pytest_plugin",
    "tests.llm_double.pytest_plugin",
]
