"""`load_settings`: the one place that puts the sources in order.

Lowest to highest: the defaults of the models < the YAML file < ``CALLOUT_*`` environment
variables (key by key) < explicit arguments (``load_settings(path, nats=...)``, as the dev
server, the benchmark and tests give them; each replaces its whole section). The command line
names only the file (``--config``). `callout.settings.sources` reads each source and remembers
where every value came from, so that an error names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callout.errors import ConfigError
from callout.settings.problems import format_errors
from callout.settings.root import Settings
from callout.settings.sources import (
    Sources,
    explicit,
    merge,
    over_explicit,
    read_environment,
    read_yaml,
)


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from the defaults, ``path`` (YAML), the ``CALLOUT_*`` variables of ``environ``
    (default: the process environment) and ``overrides``, each over the one before; else
    `ConfigError` naming the source (``file:line``, the variable, or the argument) of each
    problem."""
    merged = read_yaml(path) if path is not None else Sources()
    env = read_environment(Settings, os.environ if environ is None else environ)
    merged = merge(merged, env)
    merged = over_explicit(merged, explicit(overrides))
    try:
        return Settings.model_validate(merged.data)
    except ValidationError as error:
        default = str(path) if path is not None else "settings"
        raise ConfigError(format_errors(error, merged, Settings, default)) from None
