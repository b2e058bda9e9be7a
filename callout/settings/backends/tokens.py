"""Options of the API-token backend (`callout.backends.tokens`)."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field

from callout.decision import BackendName
from callout.settings.base import Section

NAME: Final = BackendName.TOKEN


class TokenBackendSettings(Section):
    """Opaque API tokens ``<prefix>_<id>_<secret>``, stored in the policy as HMAC-SHA256."""

    type: Literal["token"]
    accepts: tuple[Literal["token"], ...] = Field(("token",), min_length=1)
    prefix: str = Field(default="nac", pattern=r"^[a-z][a-z0-9]{1,15}$")
    pepper_file: Path = Field(description="the HMAC key of the token hashes (a secret)")
