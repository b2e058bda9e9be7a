"""The OIDC recipes of policies/README.md, end to end: tokens shaped exactly as Kubernetes,
GitHub Actions and Keycloak issue them (claims and headers as each documents them), keys
served over HTTP on 127.0.0.1 (by discovery where the real issuer publishes it), logins
through a real nats-server in config mode.

Only ``iss`` differs from the real issuers where discovery needs a URL this test can serve;
the token shapes are copied from the issuers' documentation:
- Kubernetes projected service-account token (TokenRequest API, "Service account tokens"):
  ``aud`` a list, ``sub`` ``system:serviceaccount:NS:NAME``, a ``kubernetes.io`` object with
  ``namespace``, ``serviceaccount``, ``pod``, ``node``, ``warnafter``; header ``alg``, ``kid``.
- GitHub Actions ("About security hardening with OpenID Connect"): ``aud`` a string,
  ``repository``, ``ref``, ``environment``, ``job_workflow_ref``... ; header ``typ``, ``alg``,
  ``x5t``, ``kid``.
- Keycloak access token: ``realm_access.roles``, ``groups`` (full paths), ``azp``,
  ``preferred_username``, ``typ: Bearer``; header ``alg``, ``typ``, ``kid``.
- Zitadel JWT access token: ``aud`` the project and client ids, ``client_id``, and the
  roles as the keys of ``urn:zitadel:iam:org:project:roles``; header ``alg``, ``kid``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callout.decision import Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests import counts
from tests.integration.backends.idp import JwksServer, SigningKey, mint
from tests.integration.conftest import connect
from tests.integration.rawclient import raw_connect

pytestmark = pytest.mark.integration

CLUSTER = "https://kubernetes.default.svc.cluster.local"
AUTH_VIOLATION = "Authorization Violation"

_POLICY = """\
version: 1
roles:
  workload:
    publish: {allow: ["svc.{{user.attr.namespace}}.{{user.attr.serviceaccount}}.>",
                      "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
  deployer:
    publish: {allow: ["deploy.{{user.attr.environment}}.>", "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
  publisher:
    publish: {allow: ["app.>", "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
groups:
  "k8s:payments": {roles: [workload], account: APP}
  "gh:octo-org/octo-repo": {roles: [deployer], account: OPS}
  "kc:nats-publisher": {roles: [publisher], account: APP}
  "kc:/ops/oncall": {roles: [publisher], account: APP}
  "zitadel:nats-publisher": {roles: [publisher], account: APP}
"""
ZITADEL_ROLES = "urn:zitadel:iam:org:project:roles"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfigModeSetup]:
    directory = tmp_path_factory.mktemp("recipes")
    setup = ConfigModeSetup(directory / "keys", free_port(), target_accounts=("APP", "OPS"))
    with NatsServer(setup.write().config_file, setup.port):
        yield setup


@dataclass(frozen=True)
class Issuers:
    """One stand-in IdP per recipe, each with a key of its own."""

    kubernetes: JwksServer
    github: JwksServer
    keycloak: JwksServer
    zitadel: JwksServer


@pytest.fixture
def idps() -> Iterator[Issuers]:
    servers = [JwksServer(SigningKey.rsa(uuid.uuid4().hex[:16])).start() for _ in range(4)]
    try:
        yield Issuers(*servers)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def app(server: ConfigModeSetup, idps: Issuers, tmp_path: Path) -> AsyncIterator[App]:
    """The service with the recipes, as policies/README.md writes them."""
    kubernetes, github, keycloak, zitadel = (
        idps.kubernetes,
        idps.github,
        idps.keycloak,
        idps.zitadel,
    )
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "recipes.yaml").write_text(_POLICY)
    issuers = [
        {  # Kubernetes: the API server's discovery needs credentials, so the key URL is given
            "issuer": CLUSTER,
            "audience": ["nats"],
            "jwks_url": kubernetes.url,
            "require": {"kubernetes.io.namespace": ["payments"]},
            "group_claims": ["kubernetes.io.namespace"],
            "group_prefix": "k8s:",
            "attribute_claims": {
                "namespace": "kubernetes.io.namespace",
                "serviceaccount": "kubernetes.io.serviceaccount.name",
            },
        },
        {  # GitHub Actions: discovery from the issuer URL
            "issuer": github.issuer,
            "audience": ["nats"],
            "require": {
                "repository": "octo-org/octo-repo",
                "ref": "refs/heads/main",
                "environment": ["prod", "staging"],
                "job_workflow_ref": {
                    "glob": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"
                },
            },
            "group_claims": ["repository"],
            "group_prefix": "gh:",
            "attribute_claims": {"environment": "environment"},
        },
        {  # Keycloak: discovery; users by name, realm roles and groups as groups
            "issuer": keycloak.issuer,
            "audience": ["nats"],
            "require": {"azp": "nats-cli"},
            "principal_claim": "preferred_username",
            "group_claims": ["realm_access.roles", "groups"],
            "group_prefix": "kc:",
        },
        {  # Zitadel: discovery; project roles are the keys of an object claim
            "issuer": zitadel.issuer,
            "audience": ["231034930284"],
            "require": {"client_id": "231035012345@nats"},
            "group_claims": [ZITADEL_ROLES],
            "group_prefix": "zitadel:",
        },
    ]
    settings = server.settings(policies, backends=[{"type": "oidc", "issuers": issuers}])
    service = App(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def kubernetes_token(idp: JwksServer, namespace: str, account: str) -> str:
    now = int(time.time())
    payload = {
        "aud": ["nats"],
        "exp": now + 3600,
        "iat": now,
        "iss": CLUSTER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": str(uuid.uuid4())},
            "pod": {"name": f"{account}-7d9f8c6b5-x2x4q", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
            "warnafter": now + 3000,
        },
        "nbf": now,
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }
    return mint(idp.keys[0], payload)  # header: alg, kid (and typ as PyJWT writes it)


def github_token(idp: JwksServer, **change: str) -> str:
    now = int(time.time())
    environment = change.get("environment", "prod")
    ref = change.get("ref", "refs/heads/main")
    payload: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "sub": f"repo:octo-org/octo-repo:environment:{environment}",
        "environment": environment,
        "aud": "nats",
        "ref": ref,
        "sha": "d6bb3a5a51e46b2f0d1f4bd4a7c1b7a1d3c3e7b2",
        "repository": change.get("repository", "octo-org/octo-repo"),
        "repository_owner": "octo-org",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "8123456789",
        "run_number": "10",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_type": "branch",
        "workflow_ref": f"octo-org/octo-repo/.github/workflows/deploy.yml@{ref}",
        "workflow_sha": "d6bb3a5a51e46b2f0d1f4bd4a7c1b7a1d3c3e7b2",
        "job_workflow_ref": f"octo-org/octo-repo/.github/workflows/deploy.yml@{ref}",
        "job_workflow_sha": "d6bb3a5a51e46b2f0d1f4bd4a7c1b7a1d3c3e7b2",
        "iss": idp.issuer,
        "nbf": now - 5,
        "exp": now + 300,
        "iat": now,
    }
    return mint(idp.keys[0], payload, typ="JWT", x5t="cd0c3Vq2AM_LDmBJfD1GQmTIsC8")


def keycloak_token(idp: JwksServer, roles: list[str], groups: list[str], azp: str) -> str:
    now = int(time.time())
    payload = {
        "exp": now + 300,
        "iat": now,
        "auth_time": now - 10,
        "jti": str(uuid.uuid4()),
        "iss": idp.issuer,
        "aud": ["nats", "account"],
        "sub": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": azp,
        "sid": str(uuid.uuid4()),
        "acr": "1",
        "realm_access": {"roles": ["default-roles-nats", "offline_access", *roles]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid profile email",
        "email_verified": True,
        "name": "Alice Liddell",
        "groups": groups,
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Liddell",
        "email": "alice@example.org",
    }
    return mint(idp.keys[0], payload, typ="JWT")


async def user_info(url: str, token: str) -> dict[str, Any]:
    nc = await connect(url, token=token)
    try:
        reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
    finally:
        await nc.close()
    data: dict[str, Any] = json.loads(reply.data)["data"]
    return data


async def refused(url: str, token: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    _, line = await raw_connect(port, {"auth_token": token})
    assert AUTH_VIOLATION in line


def url(server: ConfigModeSetup) -> str:
    return f"nats://127.0.0.1:{server.port}"


def decisions(app: App) -> dict[Reason, int]:
    return dict(counts.decisions(app.metrics))


async def test_a_kubernetes_service_account_lands_in_its_namespaces_account(
    server: ConfigModeSetup, app: App, idps: Issuers
) -> None:
    """Namespace → account (via the group), service account → the subjects it may use;
    another namespace of the same cluster is refused by the require pin."""
    kubernetes = idps.kubernetes
    info = await user_info(url(server), kubernetes_token(kubernetes, "payments", "api"))
    assert info["account"] == "APP"
    assert info["user"] == "system:serviceaccount:payments:api"
    assert "svc.payments.api.>" in info["permissions"]["publish"]["allow"]
    await refused(url(server), kubernetes_token(kubernetes, "default", "api"))
    assert decisions(app)[Reason.CLAIM_NOT_ALLOWED] == 1


async def test_a_github_actions_job_deploys_only_from_its_repository_branch_and_workflow(
    server: ConfigModeSetup, app: App, idps: Issuers
) -> None:
    """Keys by discovery; repository, ref, environment and workflow are all pinned."""
    github = idps.github
    info = await user_info(url(server), github_token(github))
    assert info["account"] == "OPS"
    assert info["user"] == "repo:octo-org/octo-repo:environment:prod"
    assert "deploy.prod.>" in info["permissions"]["publish"]["allow"]
    await refused(url(server), github_token(github, repository="octo-org/octo-repo-fork"))
    await refused(url(server), github_token(github, ref="refs/heads/feature"))
    await refused(url(server), github_token(github, environment="dev"))
    assert decisions(app)[Reason.CLAIM_NOT_ALLOWED] == 3
    assert github.discovery_requests == 1


async def test_a_keycloak_user_gets_roles_from_realm_roles_and_groups(
    server: ConfigModeSetup, app: App, idps: Issuers
) -> None:
    """preferred_username names the user; realm roles and group paths map to roles; a token
    issued to another client (azp) of the realm is refused before any group is looked at."""
    keycloak = idps.keycloak
    by_role = keycloak_token(keycloak, ["nats-publisher"], [], azp="nats-cli")
    info = await user_info(url(server), by_role)
    assert (info["account"], info["user"]) == ("APP", "alice")
    by_group = keycloak_token(keycloak, [], ["/ops/oncall"], azp="nats-cli")
    assert (await user_info(url(server), by_group))["account"] == "APP"
    await refused(url(server), keycloak_token(keycloak, [], [], azp="nats-cli"))
    await refused(url(server), keycloak_token(keycloak, ["nats-publisher"], [], azp="grafana"))
    assert decisions(app)[Reason.NO_MATCHING_RULE] == 1
    assert decisions(app)[Reason.CLAIM_NOT_ALLOWED] == 1


def zitadel_token(idp: JwksServer, roles: list[str], client_id: str) -> str:
    now = int(time.time())
    payload = {
        "aud": ["231034930284", client_id],
        "client_id": client_id,
        "exp": now + 300,
        "iat": now,
        "iss": idp.issuer,
        "jti": "231040112233",
        "nbf": now,
        "sub": "231039876543",
        ZITADEL_ROLES: {role: {"231030000001": "acme.zitadel.cloud"} for role in roles},
    }
    return mint(idp.keys[0], payload)


async def test_a_zitadel_user_gets_groups_from_its_project_roles(
    server: ConfigModeSetup, app: App, idps: Issuers
) -> None:
    """The role names are the keys of Zitadel's roles object; the client id is pinned."""
    zitadel = idps.zitadel
    info = await user_info(
        url(server), zitadel_token(zitadel, ["nats-publisher"], "231035012345@nats")
    )
    assert (info["account"], info["user"]) == ("APP", "231039876543")
    await refused(url(server), zitadel_token(zitadel, ["nats-publisher"], "231035099999@grafana"))
    assert decisions(app)[Reason.CLAIM_NOT_ALLOWED] == 1
