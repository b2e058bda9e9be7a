"""`callout serve` (production) and `callout dev` (a local nats-server wired for callout)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, port_in_use
from callout.errors import ConfigError
from callout.observability import logs
from callout.service.app import EXIT_FORCED, App
from callout.settings import load_settings


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the service against an existing nats-server")
    serve.add_argument("--config", type=Path, required=True, help="YAML settings file")
    serve.set_defaults(func=serve_command)

    dev = commands.add_parser(
        "dev", help="start a local nats-server wired for callout plus the service"
    )
    dev.add_argument("--port", type=int, default=4222, help="client port (default 4222)")
    dev.add_argument(
        "--policies",
        type=Path,
        help="policy directory (default: ./policies if it exists, else the packaged examples)",
    )
    dev.add_argument("--xkey", action="store_true", help="encrypt callout requests (xkey)")
    dev.add_argument(
        "--operator",
        action="store_true",
        help="operator mode: a minted operator/account chain, memory resolver, default sentinel",
    )
    dev.add_argument("--dir", type=Path, help="keep keys and config here instead of a temp dir")
    dev.add_argument(
        "--http-port", type=int, default=8080, help="probes and metrics port (default 8080)"
    )
    dev.set_defaults(func=dev_command)


def serve_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log.level, settings.log.format)
    factory = loop_factory(settings.service.event_loop)
    app = App(settings, settings_source=lambda: load_settings(args.config))
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(app.run())
    except KeyboardInterrupt:  # Ctrl-C before the service installed its signal handlers
        return EXIT_FORCED


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``service.event_loop`` names: None for asyncio's own, or uvloop's
    (the optional extra); `ConfigError` when uvloop is named and not installed."""
    if name == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - an optional extra, imported only when configured
    except ImportError:
        raise ConfigError(
            "service.event_loop: uvloop needs the Python package 'uvloop':"
            " pip install 'nats-auth-callout[uvloop]'"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


_SNIPPET = """\
Connect with nats-py (example users from {policies}):

    import asyncio, nats
    async def main():
        nc = await nats.connect("nats://127.0.0.1:{port}", user="alice", password="alice-secret")
        await nc.publish("app.hello", b"hi")
        await nc.close()
    asyncio.run(main())

Or with the nats CLI:  nats --server nats://alice:alice-secret@127.0.0.1:{port} pub app.hello hi
Keys and the server config are in {directory} (throwaway). Ctrl-C stops both.
"""


def _example_policies() -> Path:
    """The example policies shipped in the package (a copy of the repository's policies/)."""
    return Path(str(resources.files("callout") / "examples" / "policies"))


def dev_command(args: argparse.Namespace) -> int:
    if args.policies is None:
        local = Path("policies")
        args.policies = local if local.is_dir() else _example_policies()
    if not args.policies.is_dir():
        print(
            f"callout dev: no policy directory {args.policies} (use --policies DIR)",
            file=sys.stderr,
        )
        return 2
    for port, flag in ((args.port, "--port"), (args.http_port, "--http-port")):
        if port_in_use(port):
            print(
                f"callout dev: port {port} is in use (another nats-server or callout dev?); "
                f"stop it or pick another with {flag} N",
                file=sys.stderr,
            )
            return 1
    with tempfile.TemporaryDirectory(prefix="callout-dev-") as temp:
        directory = args.dir or Path(temp)
        setup: ConfigModeSetup | OperatorModeSetup
        if args.operator:
            setup = OperatorModeSetup(
                directory, args.port, encrypted=args.xkey, default_sentinel=True
            ).write()
        else:
            setup = ConfigModeSetup(directory, args.port, encrypted=args.xkey).write()
        settings = setup.settings(
            args.policies,
            log={"level": "info", "format": "auto"},
            http={"enabled": True, "host": "127.0.0.1", "port": args.http_port},
        )
        logs.configure(settings.log.level, settings.log.format, stream=sys.stderr)
        server = NatsServer(setup.config_file, args.port)
        try:
            server.start()
        except (RuntimeError, TimeoutError, FileNotFoundError) as error:
            print(f"callout dev: nats-server did not come up: {error}", file=sys.stderr)
            print(server.log_text()[-2000:], file=sys.stderr)
            server.stop()
            return 1
        try:
            mode = "xkey-encrypted" if args.xkey else "plaintext"
            kind = "operator mode, default sentinel" if args.operator else "config mode"
            print(f"nats-server listening on {server.url} ({kind}, {mode} callout)")
            print(f"policies: {args.policies}")

            def ready() -> None:
                print(_SNIPPET.format(policies=args.policies, port=args.port, directory=directory))
                http = f"http://127.0.0.1:{args.http_port}"
                print(f"Probes and metrics: {http}/livez  {http}/readyz  {http}/metrics")
                print(f"callout dev ready: clients can connect to {server.url}", flush=True)

            return asyncio.run(App(settings, on_ready=ready).run())
        finally:
            server.stop()
