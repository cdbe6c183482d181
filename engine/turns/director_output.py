"""The shape of the director's JSON, parsed so that one bad entry costs only that entry.

Models answer in many near-misses of the asked-for shape, more so small local ones in
`json_object` or `text` mode. Rejecting the whole answer for one of them would lose every
other change of the turn, so parsing salvages what it can and says what it left out
(`DirectorOutput.parse_notes`, which the planner passes on to the event log):

- null or missing fields take their defaults; unknown fields are ignored;
- each list entry is checked on its own: an entry missing a required field, or not an
  object at all, is dropped; a wrongly typed optional field of an entry is ignored;
- a single object where a list belongs counts as a list of one;
- maps are read as lists where the meaning is plain: `"flags": {"door_open": true}`,
  `"presence": {"mira": false}`, `"moods": {"mira": "wary"}` (or `{"mira": {"mood": ...}}`)
  and `"learned": {"mira": "the door is open"}`;
- a wrongly typed scene field, summary or importance is ignored.

Only an answer that is not a JSON object at all fails validation.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    model_validator,
)

M = TypeVar("M", bound=BaseModel)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class RelationshipDelta(_Lenient):
    source: str
    target: str
    trust: float = 0
    affection: float = 0
    familiarity: float = 0
    reason: str = ""


class FlagChange(_Lenient):
    name: str
    value: bool | int | float | str
    reason: str = ""


class Learned(_Lenient):
    character: str
    fact: str


class PresenceChange(_Lenient):
    character: str
    present: bool
    reason: str = ""


class MoodChange(_Lenient):
    character: str
    mood: str = ""
    intent: str = ""


class SceneChange(_Lenient):
    location: str | None = None
    time_of_day: str | None = None
    weather: str | None = None
    tone: str | None = None
    reason: str = ""


# List field: (entry model, the entry's name field, the field a map's values fill or None).
_LISTS: dict[str, tuple[type[_Lenient], str, str | None]] = {
    "relationships": (RelationshipDelta, "source", None),
    "flags": (FlagChange, "name", "value"),
    "learned": (Learned, "character", "fact"),
    "presence": (PresenceChange, "character", "present"),
    "moods": (MoodChange, "character", "mood"),
}
_MAX_ENTRIES = 100  # per list: bounded work on runaway answers


class DirectorOutput(_Lenient):
    summary: str = ""
    relationships: list[RelationshipDelta] = []
    flags: list[FlagChange] = []
    learned: list[Learned] = []
    presence: list[PresenceChange] = []
    moods: list[MoodChange] = []
    scene: SceneChange | None = None
    importance: float = 0.5

    _parse_notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def parse_notes(self) -> tuple[str, ...]:
        """What parsing left out of the answer, one note each."""
        return tuple(self._parse_notes)

    @model_validator(mode="wrap")
    @classmethod
    def _salvage(cls, data: Any, handler: ModelWrapValidatorHandler[DirectorOutput]) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        notes: list[str] = []
        kept: dict[str, Any] = {}
        for field, value in data.items():
            if value is None or field not in cls.model_fields:
                continue
            if field in _LISTS:
                model, name_field, map_field = _LISTS[field]
                entries = _entries(value, name_field, map_field)
                if len(entries) > _MAX_ENTRIES:
                    notes.append(f"dropped {field} entries over the first {_MAX_ENTRIES}")
                    entries = entries[:_MAX_ENTRIES]
                fitted = (_fit(model, entry, f"a {field} entry", notes) for entry in entries)
                kept[field] = [entry for entry in fitted if entry is not None]
            elif field == "scene":
                scene = _fit(SceneChange, value, "the scene change", notes)
                if scene is not None:
                    kept[field] = scene
            else:
                kept[field] = value
        try:
            output = handler(kept)
        except ValidationError as error:
            bad = _bad_fields(error)
            notes.append(f"ignored {', '.join(sorted(bad))}: wrong type")
            output = handler({k: v for k, v in kept.items() if k not in bad})
        output._parse_notes = notes
        return output


def _entries(value: Any, name_field: str, map_field: str | None) -> list[Any]:
    """A list field's entries, from a list, a single object or a map of names to values."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and map_field is not None and name_field not in value:
        return [
            {name_field: name, **item}
            if isinstance(item, dict)
            else {name_field: name, map_field: item}
            for name, item in value.items()
        ]
    return [value]


def _fit(model: type[M], data: Any, what: str, notes: list[str]) -> M | None:
    """`data` as `model`, without its wrongly typed optional fields; None (and a note) when
    it is not an object or a required field is missing or wrong."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        notes.append(f"dropped {what}: not an object")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        bad = _bad_fields(error)
    if not bad:
        notes.append(f"dropped {what}: not usable")
        return None
    try:
        fitted = model.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:
        notes.append(f"dropped {what}: {', '.join(sorted(bad))} missing or of the wrong type")
        return None
    notes.append(f"ignored {', '.join(sorted(bad))} of {what}: wrong type")
    return fitted


def _bad_fields(error: ValidationError) -> set[str]:
    return {str(problem["loc"][0]) for problem in error.errors() if problem["loc"]}
