"""OpenID Connect discovery: from an issuer URL to the URL of its keys.

An issuer configured without ``jwks_url`` or ``jwks_file`` publishes its metadata at
``<issuer>/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0, section 4). We
read only two members of it: ``issuer``, which must equal the configured issuer exactly (a
document for another issuer is refused: section 4.3), and ``jwks_uri``, which must be
https; http only when both the issuer and the key URL are on loopback (tests, a sidecar),
so a document can never point the service at its own host's plain-HTTP ports. The document
is fetched with the same deadline, size limit and no-redirect rule as the keys
(`callout.backends.jwks`).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from callout.settings.backends.oidc import url_allowed

WELL_KNOWN = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    """Where ``issuer`` publishes its metadata (a trailing slash of the issuer dropped)."""
    return issuer.rstrip("/") + WELL_KNOWN


def _https(url: str) -> bool:
    return urlsplit(url).scheme == "https" and url_allowed(url)


def jwks_uri(data: bytes, issuer: str) -> str:
    """The key-set URL the metadata ``data`` names; ValueError when it cannot be used."""
    document = json.loads(data)
    if not isinstance(document, dict):
        raise ValueError("the discovery document is not a JSON object")  # noqa: TRY004
    if document.get("issuer") != issuer:
        raise ValueError("the discovery document names another issuer")
    found = document.get("jwks_uri")
    if not isinstance(found, str) or not found:
        raise ValueError("the discovery document has no jwks_uri")
    if not (_https(found) or (not _https(issuer) and url_allowed(found))):
        raise ValueError("jwks_uri must be https:// (http:// only for a loopback issuer)")
    return found
