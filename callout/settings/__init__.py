"""The one settings tree of a service process, built once at start-up and passed down.

Unknown keys are errors. Secrets are never values in this tree: it names *files* (seeds,
passwords, creds) that `callout.secretfiles` reads. Where values come from, and in which order,
is `callout.settings.loader`'s; one module per part of the tree:

- `root`: `Settings` and the checks of each mode; `nats`: the connection; `keys`: signing
  keys and the operator-mode key model; `sections`: service, policy, log, http, audit,
  throttle, reload, decision cache; `sessions`: live sessions;
- `backends`: one module of options per credential backend, named as the backend;
- `durations`: the duration grammar the policy shares; `sources`: reading YAML and the
  environment, remembering where each value came from; `problems`: errors that name it;
  `annotations`: walking the models by their types; `base`: the section base class.
"""

from __future__ import annotations

from callout.settings.backends import (
    BackendSettings,
    LdapBackendSettings,
    LdapGroupSettings,
    OidcBackendSettings,
    OidcIssuerSettings,
    StaticBackendSettings,
    TokenBackendSettings,
)
from callout.settings.durations import Seconds, parse_duration
from callout.settings.keys import AccountKeys, KeySettings, OperatorSettings, TargetAccount
from callout.settings.loader import load_settings
from callout.settings.nats import NatsSettings, redact_url
from callout.settings.policysource import PolicyKvSettings, PolicySource
from callout.settings.root import Mode, Settings
from callout.settings.sections import (
    AuditJetStreamSettings,
    AuditSettings,
    DecisionCacheSettings,
    DenyMode,
    HttpSettings,
    LogSettings,
    PolicySettings,
    ReloadSettings,
    ServiceSettings,
    ThrottleSettings,
)
from callout.settings.sessions import SessionsSettings
from callout.settings.state import StateSettings
from callout.settings.versions import ServerVersionSettings, VersionAction

__all__ = [
    "AccountKeys",
    "AuditJetStreamSettings",
    "AuditSettings",
    "BackendSettings",
    "DecisionCacheSettings",
    "DenyMode",
    "HttpSettings",
    "KeySettings",
    "LdapBackendSettings",
    "LdapGroupSettings",
    "LogSettings",
    "Mode",
    "NatsSettings",
    "OidcBackendSettings",
    "OidcIssuerSettings",
    "OperatorSettings",
    "PolicyKvSettings",
    "PolicySettings",
    "PolicySource",
    "ReloadSettings",
    "Seconds",
    "ServiceSettings",
    "ServerVersionSettings",
    "SessionsSettings",
    "StateSettings",
    "Settings",
    "StaticBackendSettings",
    "TargetAccount",
    "ThrottleSettings",
    "TokenBackendSettings",
    "VersionAction",
    "load_settings",
    "parse_duration",
    "redact_url",
]
