"""The value types of policy files: subjects, durations, CIDRs, clock times, zones, hashes, keys.

Each is an ``Annotated`` type whose validator gives a precise message that never repeats a
secret, and whose JSON schema tells an editor what to accept.
"""

from __future__ import annotations

import ipaddress
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, StringConstraints, WithJsonSchema

from callout.credentials.passwords import hash_scheme
from callout.credentials.tokens import ID_PATTERN, token_hash_scheme
from callout.errors import InvalidKeyError
from callout.policy.templates import check_subject
from callout.protocol.nkeys import KeyRole, decode_seed, is_public_key
from callout.settings.durations import PATTERN as DURATION_PATTERN
from callout.settings.durations import parse_seconds

_TIME_OF_DAY = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"

CONNECTION_TYPES = (
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
)


def _duration(value: object) -> timedelta:
    total = timedelta(seconds=parse_seconds(value, bare_seconds=False))
    if total <= timedelta():
        raise ValueError("a duration must be longer than zero")
    return total


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network such as 10.0.0.0/8") from None
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from None
    return str(network)


def _zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin, UTC)") from None
    return value


def _password_hash(value: str) -> str:
    if hash_scheme(value) is None:
        raise ValueError(
            "not an argon2id or bcrypt hash; plaintext passwords are not allowed"
            " (make a hash with `callout hash-password`)"
        )
    return value


def _token_hash(value: str) -> str:
    if token_hash_scheme(value) is None:
        raise ValueError(
            "not an hmac-sha256 token hash (make one with `callout token new`) or a bcrypt"
            " hash; plaintext tokens are not allowed"
        )
    return value


def _timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if len(value) == len("2027-01-31"):
                return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            if parsed.tzinfo is None:
                raise ValueError("add a time zone to the timestamp, e.g. 2027-01-31T00:00:00Z")
            return parsed
    raise ValueError("expected a date 2027-01-31 or a timestamp 2027-01-31T12:00:00Z")


def _user_nkey(value: str) -> str:
    if is_public_key(value, KeyRole.USER):
        return value
    try:
        decode_seed(value)
    except InvalidKeyError:
        raise ValueError("not a user public key (56 characters starting with U)") from None
    raise ValueError("this is a SEED, a secret: remove it and put the public key (U...) here")


def _publish(value: str) -> str:
    return check_subject(value, queue_allowed=False)


def _subscribe(value: str) -> str:
    return check_subject(value, queue_allowed=True)


# The grammar of `callout.settings.durations`, with a unit required and more than zero.
DurationWithUnit = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "1h30m"]}),
]
PublishSubject = Annotated[str, AfterValidator(_publish)]
SubscribeSubject = Annotated[str, AfterValidator(_subscribe)]
Cidr = Annotated[str, AfterValidator(_cidr)]
TimeOfDay = Annotated[str, StringConstraints(pattern=_TIME_OF_DAY)]
Zone = Annotated[str, AfterValidator(_zone)]
ConnectionType = Literal[
    "STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"
]
PasswordHash = Annotated[
    str,
    AfterValidator(_password_hash),
    WithJsonSchema({"type": "string", "pattern": r"^\$(argon2(id|i|d)|2[aby])\$"}),
]
TokenHash = Annotated[
    str,
    AfterValidator(_token_hash),
    WithJsonSchema({"type": "string", "pattern": r"^(hmac-sha256:[A-Za-z0-9_-]{43}|\$2[aby]\$)"}),
]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T.*(Z|[+-][0-9]{2}:?[0-9]{2}))?$",
            "examples": ["2027-01-31", "2027-01-31T12:00:00Z"],
        }
    ),
]
TokenId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
UserNkey = Annotated[
    str,
    AfterValidator(_user_nkey),
    WithJsonSchema({"type": "string", "pattern": "^U[A-Z2-7]{55}$"}),
]
Token = Annotated[str, StringConstraints(min_length=1, pattern=r"^\S+$")]
Name = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$")]
RoleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
