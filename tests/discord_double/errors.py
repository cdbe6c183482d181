"""Discord-style API errors and the validation rules that produce them (content, embeds)."""

from __future__ import annotations

from typing import Any

CONTENT_LIMIT = 2000
EMBED_LIMITS = {"title": 256, "description": 4096}
FIELD_LIMITS = {"name": 256, "value": 1024}
EMBED_TOTAL_LIMIT = 6000
MAX_EMBEDS = 10
MAX_FIELDS = 25


class ApiError(Exception):
    """Raised inside a route; the middleware turns it into Discord's JSON error body."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def unknown(kind: str, code: int) -> ApiError:
    return ApiError(404, code, f"Unknown {kind}")


UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def _max_length(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


def _embed_errors(embed: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    for key, limit in EMBED_LIMITS.items():
        if len(str(embed.get(key) or "")) > limit:
            errors[key] = _max_length(limit)
    for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
        part = embed.get(key) or {}
        if len(str(part.get(sub) or "")) > limit:
            errors[key] = {sub: _max_length(limit)}
    fields = embed.get("fields") or []
    if len(fields) > MAX_FIELDS:
        errors["fields"] = _max_length(MAX_FIELDS)
    else:
        field_errors = {}
        for index, fld in enumerate(fields):
            bad = {k: _max_length(n) for k, n in FIELD_LIMITS.items() if len(fld.get(k, "")) > n}
            if bad:
                field_errors[str(index)] = bad
        if field_errors:
            errors["fields"] = field_errors
    return errors


def embed_size(embed: dict[str, Any]) -> int:
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += len((embed.get("footer") or {}).get("text") or "")
    size += len((embed.get("author") or {}).get("name") or "")
    for fld in embed.get("fields") or []:
        size += len(fld.get("name") or "") + len(fld.get("value") or "")
    return size


def validate_message(body: dict[str, Any], *, creating: bool, webhook: bool = False) -> None:
    """Raise Discord's 400 for over-long content, embeds beyond limits or an empty message."""
    errors: dict[str, Any] = {}
    content = body.get("content")
    if content is not None and len(str(content)) > CONTENT_LIMIT:
        errors["content"] = _max_length(CONTENT_LIMIT)
    embeds = body.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        errors["embeds"] = _max_length(MAX_EMBEDS)
    else:
        embed_errors = {str(i): e for i, e in enumerate(map(_embed_errors, embeds)) if e}
        if embed_errors:
            errors["embeds"] = embed_errors
        elif sum(embed_size(e) for e in embeds) > EMBED_TOTAL_LIMIT:
            errors["embeds"] = {
                "_errors": [
                    {
                        "code": "MAX_EMBED_SIZE_EXCEEDED",
                        "message": "Embed size exceeds maximum size of 6000",
                    }
                ]
            }
    if webhook:
        name = body.get("username")
        if name is not None and not (1 <= len(name) <= 80):
            errors["username"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_BAD_LENGTH",
                        "message": "Must be between 1 and 80 in length.",
                    }
                ]
            }
        elif name is not None and ("discord" in name.lower() or "clyde" in name.lower()):
            errors["username"] = {
                "_errors": [
                    {"code": "USERNAME_INVALID_CONTAINS", "message": "Username cannot contain …"}
                ]
            }
    if errors:
        raise ApiError(400, 50035, "Invalid Form Body", errors)
    has_body = any(body.get(k) for k in ("content", "embeds", "components", "attachments"))
    if creating and not has_body and not body.get("sticker_ids") and not body.get("poll"):
        raise ApiError(400, 50006, "Cannot send an empty message")
