"""What the image tests share: the credentials they log in with, the deploy example's
settings and Secret made local, HTTP probes and NATS logins."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from callout.credentials.tokens import hmac_hash, new_token
from callout.devserver.config_mode import ConfigModeSetup
from callout.protocol.nkeys import KeyPair, KeyRole
from tests.deploy import manifests
from tests.image.podman import Container
from tests.logins import connect, http_status

READY_TIMEOUT = 60.0
# Below Linux's ephemeral range (32768-60999 by default): a port found free there cannot be
# taken a moment later as the source port of some other test's outgoing connection.
LISTEN_PORTS = range(20000, 32000)
_GIVEN: set[int] = set()  # never the same port twice in one run


def listen_port() -> int:
    """A TCP port on 127.0.0.1, free a moment ago, outside the ephemeral range. The
    containers share the host network with everything else running on this machine."""
    for _ in range(100):
        port = random.choice(LISTEN_PORTS)  # noqa: S311 - not a secret
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS} after 100 tries")


PEPPER_FILE = "/etc/callout/secrets/token-pepper"


class Logins:
    """Credentials of the three kinds the test logs in with, and the policy file for two of
    them (the example policy has the password user)."""

    def __init__(self) -> None:
        self.sensor = KeyPair.generate(KeyRole.USER)
        self.pepper = base64.b64encode(secrets.token_bytes(32)).decode()
        self.token = new_token("nac", "IMAGETEST1")

    def policy(self) -> str:
        stored = hmac_hash(self.pepper.encode(), self.token.text)
        return f"""\
version: 1
roles:
  image-test:
    publish:
      allow: ["image.>", "$SYS.REQ.USER.INFO"]
    subscribe:
      allow: ["_INBOX.>"]
users:
  sensor:
    nkey: {self.sensor.public_key}
    roles: [image-test]
tokens:
  {self.token.id}:
    hash: "{stored}"
    owner: "image-test@example.org"
    roles: [image-test]
"""


def named(configmaps: dict[str, dict[str, str]], prefix: str) -> str:
    """The rendered name (with kustomize's hash suffix) of the ConfigMap ``prefix``."""
    names = [name for name in configmaps if re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", name)]
    assert len(names) == 1, f"expected one ConfigMap {prefix}, found {names}"
    return names[0]


def localize_settings(text: str, nats_port: int, http_port: int, *, tokens: bool) -> str:
    """A callout.yaml with the local NATS URL and probe port (host network: loopback only),
    and with ``tokens`` the token backend after the static one."""
    settings: dict[str, Any] = yaml.safe_load(text)
    settings["nats"]["servers"] = [f"nats://127.0.0.1:{nats_port}"]
    settings["http"] = {**settings["http"], "host": "127.0.0.1", "port": http_port}
    if tokens:
        settings["backends"] = [{"type": "static"}, {"type": "token", "pepper_file": PEPPER_FILE}]
    return yaml.safe_dump(settings, sort_keys=False)


def secret_data(setup: ConfigModeSetup, logins: Logins | None = None) -> dict[str, str]:
    """Secret nats-auth-callout-keys for this server (and the token pepper with ``logins``)."""
    secret = {
        "issuer.nk": setup.issuer.seed + "\n",
        "xkey.nk": setup.xkey.seed + "\n",
        "nats-password": setup.auth_password,
    }
    if logins is not None:
        secret[Path(PEPPER_FILE).name] = logins.pepper
    return secret


def as_fs_group(root: Path, group: int) -> None:
    """What the kubelet does for a pod's ``fsGroup``: the group owns every volume file."""
    for path in [root, *root.rglob("*")]:
        os.chown(path, -1, group)


def deployment_volumes(
    root: Path, setup: ConfigModeSetup, logins: Logins, http_port: int
) -> manifests.Pod:
    """The example overlay's pod, its volumes laid out under ``root`` as the kubelet would:
    fsGroup 10001 owns the files, Secret files are 0440."""
    documents = manifests.render(manifests.OVERLAY)
    spec = manifests.deployment_pod_spec(documents)
    configmaps = manifests.config_maps(documents)
    settings_map = named(configmaps, "nats-auth-callout-settings")
    configmaps[settings_map] = {
        "callout.yaml": localize_settings(
            configmaps[settings_map]["callout.yaml"], setup.port, http_port, tokens=True
        )
    }
    policy_map = named(configmaps, "nats-auth-callout-policy")
    configmaps[policy_map] = {**configmaps[policy_map], "image-test.yaml": logins.policy()}
    pod = manifests.lay_out(root, spec, "auth-callout", configmaps, secret_data(setup, logins))
    as_fs_group(root, spec["securityContext"]["fsGroup"])
    return pod


def wait_http(container: Container, port: int, path: str, expected: int) -> float:
    """Poll until GET ``path`` answers ``expected``; the seconds it took."""
    started = time.monotonic()
    last: int | str = "no answer"
    while time.monotonic() - started < READY_TIMEOUT:
        last = http_status(port, path)
        if last == expected:
            return time.monotonic() - started
        if not container.running():
            break
        time.sleep(0.1)
    pytest.fail(f"GET {path}: wanted {expected}, last got {last}\n{container.logs()}")


async def who_am_i(url: str, **credentials: Any) -> dict[str, Any]:
    """Log in and ask the server who we are: account, user, permissions."""
    client = await connect(url, **credentials)
    try:
        reply = await client.request("$SYS.REQ.USER.INFO", b"", timeout=5)
    finally:
        await client.close()
    info: dict[str, Any] = json.loads(reply.data)["data"]
    return info
