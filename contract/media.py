"""The media types Critic speaks, and how a Content-Type or Accept header is
read: one place for the model's handler, the realtime function, the batch
formats and the local transform jobs."""
from __future__ import annotations

JSON, JSONLINES, CSV, TEXT = "application/json", "application/jsonlines", "text/csv", "text/plain"
# Other names clients use for JSON Lines.
JSONLINES_ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES,
                     "application/x-ndjson": JSONLINES}


def media_type(header: str | None) -> str:
    """The media type of a Content-Type (or one Accept entry), lower case,
    without parameters; as written (aliases kept)."""
    return (header or "").split(";")[0].strip().lower()


def canonical_media_type(header: str | None) -> str:
    """media_type with the JSON Lines aliases read as application/jsonlines."""
    media = media_type(header)
    return JSONLINES_ALIASES.get(media, media)


def charset(header: str | None) -> str | None:
    """The charset parameter of a Content-Type, lower case, or None."""
    for param in (header or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None
