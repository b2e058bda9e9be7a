"""Reload and change detection: the current `Runtime`, swapped whole when files change.

`Reloader.reload` re-reads the settings (when there is a source), the policy and the keys, and
swaps the new `Runtime` in only if all of it loads; a failure keeps the last good state. A
runtime equal to the running one (same policy digest, keys and accounts: `fingerprint`) is not
swapped. `watched_directories` and `relevant` tell the directory watcher which changes can
matter (Kubernetes' ``..data`` symlink swap included).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from callout.errors import ConfigError
from callout.observability.metrics import Metrics
from callout.policy.texts import CheckResult
from callout.service.runtime import Runtime
from callout.service.wiring import account_names, load_runtime
from callout.settings import Settings

log = structlog.get_logger("callout.app")

# What a reload applies; every other settings section needs a restart to change.
RELOADABLE = frozenset({"keys", "accounts", "system_account", "operator", "policy"})


def restart_sections(old: Settings, new: Settings) -> list[str]:
    """The sections that differ between ``old`` and ``new`` but only apply after a restart."""
    fixed = [
        name
        for name in type(new).model_fields
        if name not in RELOADABLE and getattr(old, name) != getattr(new, name)
    ]
    if (old.policy.source, old.policy.kv) != (new.policy.source, new.policy.kv):
        fixed.append("policy.source/policy.kv")  # the feed is made once, at start-up
    return sorted(fixed)


def seed_files(settings: Settings) -> list[Path]:
    """Every key file a reload reads: issuer or account signing seeds, and the xkey."""
    files = [settings.keys.issuer_seed_file, settings.keys.xkey_seed_file]
    if settings.operator is not None:
        files.append(settings.operator.callout_account.signing_seed_file)
        files += [account.signing_seed_file for account in settings.operator.accounts.values()]
    return [path for path in files if path is not None]


def fingerprint(runtime: Runtime) -> tuple[object, ...]:
    """What a reload compares: the policy digest and every key and account in use."""
    xkey = runtime.xkey.public_key if runtime.xkey is not None else ""
    return runtime.policy.digest, runtime.issuer.fingerprint, xkey, runtime.system_account


class Reloader:
    """Holds the current `Runtime`, loaded from ``settings`` when made (`ConfigError` if it
    cannot load), and reloads it. ``source`` re-reads the settings on each reload; ``policy``
    gives the policy instead of the directory (`policy.source: kv`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics,
        source: Callable[[], Settings] | None = None,
        policy: Callable[[], CheckResult] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.source = source
        self.policy = policy
        self.runtime = load_runtime(settings, policy)
        self.listeners: list[Callable[[Runtime], None]] = []  # told of each swapped runtime
        self._lock = threading.Lock()
        self._failing = False
        self._loaded(self.runtime)

    def current(self) -> Runtime:
        return self.runtime

    def policy_loaded(self) -> bool:
        """A compiled policy is in force (its digest names the policy tree it came from)."""
        return bool(self.runtime.policy.digest)

    def keys_loaded(self) -> bool:
        """The signing keys are in force, and the xkey when the settings configure one."""
        has_xkey = self.runtime.xkey is not None
        return bool(self.runtime.issuer.fingerprint) and has_xkey == bool(
            self.settings.keys.xkey_seed_file
        )

    def reload(self, trigger: str = "signal") -> bool:
        """Re-read settings (if there is a source), policy and keys; swap them in only if all
        of it loads. Returns success. Safe to call from a worker thread; one at a time."""
        with self._lock:
            try:
                settings = self._next_settings()
                runtime = load_runtime(settings, self.policy)
            except ConfigError as error:
                self._failing = True
                self.metrics.reload(success=False)
                log.error(  # noqa: TRY400 - the message (file:line: problem) is the diagnosis
                    "reload_failed", trigger=trigger, error=str(error)
                )
                return False
            fixed = restart_sections(self.settings, settings)
            if fixed:
                log.warning("reload_needs_restart", sections=fixed)
            changed = fingerprint(runtime) != fingerprint(self.runtime)
            if changed:
                self.runtime = runtime
                self._loaded(runtime)
                self.metrics.reload(success=True)
                for listener in self.listeners:
                    listener(runtime)
            # After a failure, say that the files load again even when the fix restored the
            # running state: otherwise the last line in the log stays reload_failed.
            recovered, self._failing = self._failing, False
            if changed or recovered or trigger == "signal":
                log.info(
                    "policy_reloaded",
                    trigger=trigger,
                    changed=changed,
                    recovered=recovered,
                    policy_digest=runtime.policy.digest,
                    accounts=account_names(settings),
                )
            return True

    async def reload_in_thread(self, trigger: str) -> bool:
        """`reload` off the event loop: reading and compiling files never stalls requests."""
        return await asyncio.to_thread(self.reload, trigger)

    def watched_directories(self) -> list[Path]:
        parents = dict.fromkeys(f.parent for f in seed_files(self.settings))
        policies = [self.settings.policy.directory] if self.policy is None else []
        return [*policies, *parents]

    def relevant(self, path: Path) -> bool:
        """Whether a changed path can change what a reload reads (policy files, key files, or
        Kubernetes' ``..data`` swap of either)."""
        seeds = {f.resolve() for f in seed_files(self.settings)}
        policies = self.settings.policy.directory.resolve()
        if path in seeds or path.resolve() in seeds or path == policies:
            return True
        if any(part.startswith("..") for part in path.parts[-2:]):
            return True
        files = self.policy is None
        return files and path.parent == policies and path.suffix in (".yaml", ".yml")

    def _loaded(self, runtime: Runtime) -> None:
        policy = runtime.policy
        self.metrics.policy_loaded(
            users=len(policy.users),
            groups=len(policy.groups),
            tokens=len(policy.tokens),
            digest=policy.digest,
        )

    def _next_settings(self) -> Settings:
        if self.source is None:
            return self.settings
        settings = self.source()
        if settings.mode is not self.settings.mode:
            raise ConfigError(f"mode cannot change from {self.settings.mode} on reload; restart")
        return settings
