"""Story files: schema, loading and validation."""

from engine.stories.loader import (
    LoadedStory,
    StoryCatalog,
    StoryError,
    find_story_files,
    load_catalog,
    load_story,
    parse_story,
)

__all__ = [
    "LoadedStory",
    "StoryCatalog",
    "StoryError",
    "find_story_files",
    "load_catalog",
    "load_story",
    "parse_story",
]
