"""Options of the static backend (`callout.backends.static`): the users of the policy files."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from callout.decision import BackendName
from callout.settings.base import Section

NAME: Final = BackendName.STATIC


class StaticBackendSettings(Section):
    """Users of the policy files: argon2id/bcrypt passwords and nkeys."""

    type: Literal["static"]
    accepts: tuple[Literal["password", "nkey"], ...] = Field(("password", "nkey"), min_length=1)
