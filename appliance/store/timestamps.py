"""Wall-clock times as the store keeps them: UTC ISO-8601 text whose text order is time order."""

from datetime import UTC, datetime

from .errors import InvalidRecordError

_STORED_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_text(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as stored text. A naive datetime is refused: its zone would be a guess."""
    if moment is None:
        moment = datetime.now(UTC)
    elif moment.utcoffset() is None:
        raise InvalidRecordError(
            f"{moment.isoformat()} has no time zone; pass an aware datetime, e.g. datetime.now(UTC)"
        )
    return moment.astimezone(UTC).strftime(_STORED_FORMAT)


def from_utc_text(text: str) -> datetime:
    return datetime.strptime(text, _STORED_FORMAT).replace(tzinfo=UTC)
