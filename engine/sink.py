"""The output port: how a turn leaves the engine (design §1).

Front ends (Discord, the terminal) implement `OutputSink`; the engine never renders. Events
arrive in order for a channel: `turn_started`, then for each post `post_started` and its
`text_streamed` deltas, then `turn_finished` (or a `notice` when the turn failed).
"""

from __future__ import annotations

from typing import Protocol

from engine.results import Post, TurnResult


class OutputSink(Protocol):
    async def turn_started(self, channel_id: int, turn_number: int) -> None: ...

    async def post_started(self, channel_id: int, index: int, post: Post) -> None:
        """A new post begins; `post.text` is empty, the speaker and avatar are known."""

    async def text_streamed(self, channel_id: int, index: int, delta: str) -> None:
        """More text of post `index`."""

    async def turn_finished(self, channel_id: int, result: TurnResult) -> None:
        """The turn is stored: its final posts (cleaned) and the state changes."""

    async def notice(self, channel_id: int, text: str, *, retryable: bool = False) -> None:
        """Something players should know (a failed turn, a full queue); `retryable` offers retry."""


class NullSink:
    """A sink that shows nothing; for tools and tests that only look at stored state."""

    async def turn_started(self, channel_id: int, turn_number: int) -> None:
        return None

    async def post_started(self, channel_id: int, index: int, post: Post) -> None:
        return None

    async def text_streamed(self, channel_id: int, index: int, delta: str) -> None:
        return None

    async def turn_finished(self, channel_id: int, result: TurnResult) -> None:
        return None

    async def notice(self, channel_id: int, text: str, *, retryable: bool = False) -> None:
        return None
