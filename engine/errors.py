"""User-facing errors. `str()` of every `EngineError` is safe to show to a player or moderator."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for errors whose text can be shown to users as is."""


class NotFound(EngineError):
    """Something named by the user does not exist (a story, a character, a flag...)."""


class NoPlaythrough(EngineError):
    def __init__(self) -> None:
        super().__init__("No story is running in this channel. A moderator can start one.")


class ChannelBusy(EngineError):
    """A story is already running (or paused) in this channel."""


class NotPlaying(EngineError):
    """The user has not joined the story in this channel."""


class InvalidInput(EngineError):
    """Input that cannot be used as given (empty, too long, out of range)."""


class NoFailedTurn(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "There is no failed turn to write again: it was written or taken back since."
        )


class StoryPaused(EngineError):
    def __init__(self) -> None:
        super().__init__("The story in this channel is paused. A moderator can resume it.")
