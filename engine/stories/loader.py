"""Load story files: TOML -> schema -> cross-reference checks, with errors a writer can act on.

Every problem is reported as `FILE: ENTRY: FIELD: message`, for instance
`stories/x.toml: characters[2] (key "bram"): location: "cellar" is not a location of this story`,
and all problems of a file are reported together.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.errors import EngineError
from engine.stories.checks import check_story
from engine.stories.schema import StoryFile

# pydantic names the member of a union that failed; these tags are not part of the path.
_UNION_TAGS = {"bool", "int", "float", "str", "constrained-str"}
_FRIENDLY_TYPES = {
    "missing": "is required but missing",
    "extra_forbidden": "is not a known field (check the spelling)",
}


class StoryError(EngineError):
    """A story file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class LoadedStory:
    key: str
    path: str
    content_hash: str
    story: StoryFile

    def summary(self) -> str:
        story = self.story
        episodes = sum(len(arc.episodes) for arc in story.arcs)
        counts = ", ".join(
            _count(n, word)
            for n, word in (
                (len(story.characters), "character"),
                (len(story.locations), "location"),
                (len(story.arcs), "arc"),
                (episodes, "episode"),
                (len(story.lore), "lore entry"),
            )
        )
        return f"{self.path}: {self.key} ({story.story.title!r}): {counts}"


def _count(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _entry_label(raw: Any, loc: Sequence[int | str]) -> tuple[str, str]:
    """Split a pydantic location into the entry (up to the last list item) and the field."""
    segments: list[str] = []
    node = raw
    entry_end = 1 if len(loc) > 1 else 0  # a plain section such as [story] is its own entry
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            label = f"[{part}]"
            if isinstance(node, dict) and isinstance(node.get("key"), str):
                label += f' (key "{node["key"]}")'
            segments[-1] += label
            entry_end = len(segments)
        else:
            segments.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return ": ".join(segments[:entry_end]), ".".join(segments[entry_end:])


def _describe_validation(path: str, raw: dict[str, Any], error: ValidationError) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[int | str, ...]] = set()
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if part not in _UNION_TAGS)
        if loc in seen:
            continue
        seen.add(loc)
        union = len(loc) != len(item["loc"])
        if union:
            message = "must be true/false, a number or a string"
        else:
            message = _FRIENDLY_TYPES.get(item["type"], item["msg"])
        if item["type"] not in ("missing",) and not union:
            shown = repr(item.get("input"))
            message += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        entry, field = _entry_label(raw, loc)
        where = ": ".join(piece for piece in (entry, field) if piece)
        problems.append(f"{path}: {where}: {message}")
    return problems


def story_key_for(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    key = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    return key if key and key[0].isalpha() else f"story_{key}"


def parse_story(data: bytes, path: str) -> LoadedStory:
    """Parse and check one story file's bytes; `path` is only used in messages."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise StoryError(
            path, [f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"]
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise StoryError(path, [f"{path}: TOML syntax error: {error}"]) from None
    try:
        story = StoryFile.model_validate(raw)
    except ValidationError as error:
        raise StoryError(path, _describe_validation(path, raw, error)) from None
    problems = [f"{path}: {entry}: {message}" for entry, message in check_story(story)]
    if problems:
        raise StoryError(path, problems)
    key = story_key_for(Path(path), story.story.key)
    return LoadedStory(key, path, hashlib.sha256(data).hexdigest(), story)


def load_story(path: Path) -> LoadedStory:
    """Read and check one story file. Blocking file I/O: call it from a thread in async code."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StoryError(str(path), [f"{path}: cannot read: {error.strerror}"]) from None
    return parse_story(data, str(path))


def find_story_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand folders to their `*.toml` files; returns files and problems (missing paths)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                problems.append(f"{path}: no .toml story files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


@dataclass(frozen=True)
class StoryCatalog:
    """The stories of a folder, by key, with the files that failed to load."""

    stories: dict[str, LoadedStory]
    problems: list[str]


def load_catalog(folder: Path) -> StoryCatalog:
    """Load every story in `folder`; broken files are reported, not fatal. Blocking I/O."""
    files, problems = find_story_files([folder])
    stories: dict[str, LoadedStory] = {}
    for file in files:
        try:
            loaded = load_story(file)
        except StoryError as error:
            problems.extend(error.problems)
            continue
        if loaded.key in stories:
            other = stories[loaded.key].path
            problems.append(f"{file}: story key {loaded.key!r} is already used by {other}")
            continue
        stories[loaded.key] = loaded
    return StoryCatalog(stories, problems)
