"""Grants by intent, compiled to the exact subjects nats-server checks. Pure: no I/O.

A role writes what a client is for (``jetstream``, ``kv``, ``object_store``, ``service``,
``private_inbox``); this module writes the publish and subscribe entries that allow exactly
that, next to the role's raw ``publish``/``subscribe``. The subjects, checked against the
nats-server 2.15 JetStream API (``server/jetstream_api.go``) and nats-py 2.x clients:

JetStream API under ``$JS.API``. With a domain D clients send ``$JS.D.API``; a server of domain
D maps that to ``$JS.API`` *before* it checks permissions (seen on nats-server 2.15.1), while
a server of another domain (a leaf of a hub in domain D) checks it as written and forwards it
over the leafnode connection (also seen), so a domain intent grants both prefixes:

- ``STREAM.INFO.<stream>`` reads a stream's configuration and state; every client binds with it.
- ``CONSUMER.INFO.<stream>.<consumer>`` reads a consumer; pull clients check it before fetching.
- ``CONSUMER.MSG.NEXT.<stream>.<consumer>`` asks a pull consumer for messages; they arrive on
  the reply subject, an inbox of the client (see ``private_inbox``).
- ``$JS.ACK.<stream>.<consumer>.>`` is where a client acks, naks or terms a delivered message
  (the server puts delivery counters after the consumer name; never under the domain prefix).
- ``$JS.FC.<stream>.>`` is where a push or ordered consumer answers flow-control requests;
  idle heartbeats arrive on the client's deliver subject and need no grant.
- ``CONSUMER.CREATE.<stream>`` creates a consumer with any filter (the filter is in the
  payload); ``CONSUMER.CREATE.<stream>.<name>.<filter>`` (server 2.9+) carries the filter in
  the subject, and the server refuses a payload whose filter differs, so a grant on it limits
  what the consumer may read. ``CONSUMER.DURABLE.CREATE.<stream>.<name>`` is the older durable
  form. nats-py creates ordered consumers (KV watch, object reads) with the first form.
- ``DIRECT.GET.<stream>.<subject>`` returns the last message on ``<subject>`` without JSON
  (streams with ``allow_direct``); the subject is in the request subject, so a grant can limit
  it to some keys. ``STREAM.MSG.GET.<stream>`` takes the subject in the payload: any subject.
- ``STREAM.NAMES`` lists stream names; nats-py uses it to find the stream of an object store's
  chunk subject before it reads an object.
- Management: ``STREAM.CREATE|UPDATE|DELETE|PURGE|MSG.DELETE.<stream>``,
  ``CONSUMER.NAMES|LIST.<stream>``, ``CONSUMER.DELETE.<stream>.<consumer>``.

Key-value bucket B is the stream ``KV_B`` on subjects ``$KV.B.<key>``: a put, create, update,
delete or purge is a publish to the key's subject (with headers). Object store B is the
stream ``OBJ_B``: chunks on ``$O.B.C.<nuid>``, metadata on ``$O.B.M.<encoded name>``; a put
publishes both and purges the old chunks (``STREAM.PURGE.OBJ_B``).

Services (``nats micro``): requests go to the service's subjects and replies come back to the
caller's inbox; a server answers through ``response`` (allow_responses), never a publish grant
on inboxes. Discovery is ``$SRV.PING|INFO|STATS``, then ``.<name>`` and ``.<name>.<id>``.

Private inboxes: a client receives every reply on its inbox prefix (nats-py ``_INBOX``). With
``private_inbox: true`` the identity gets ``{{user.inbox}}.>`` instead of a shared
``_INBOX.>``: a prefix of its own, ``_INBOX_`` and 32 hex digits of SHA-256 over
``<backend>:<principal>``, so another identity can neither guess its way into it nor be
granted it by a template. Clients must use that prefix (nats-py ``inbox_prefix``, nats.go
``nats.CustomInboxPrefix``, nats.js ``inboxPrefix``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callout.policy.intent_models import (
    JetStreamIntent,
    KvIntent,
    ObjectStoreIntent,
    ServiceIntent,
)
from callout.policy.models import Grants
from callout.policy.rules import Subject
from callout.policy.subjects import overlaps
from callout.policy.templates import Template, parse_template

INBOX_VARIABLE = "{{user.inbox}}"
INBOX_PREFIX = "_INBOX_"
_INBOX_HEX = 32
_DISCOVERY = ("PING", "INFO", "STATS")


def inbox_prefix(backend: str, principal: str) -> str:
    """The private inbox prefix of one identity: one subject token, safe in any template."""
    digest = hashlib.sha256(f"{backend}:{principal}".encode()).hexdigest()
    return INBOX_PREFIX + digest[:_INBOX_HEX]


@dataclass(frozen=True, slots=True)
class Compiled:
    """The entries intents add to a role or user: publish, subscribe, and whether the holder
    answers requests (allow_responses)."""

    publish: tuple[Subject, ...] = ()
    subscribe: tuple[Subject, ...] = ()
    responds: bool = False


@dataclass(frozen=True, slots=True)
class Intents:
    """Every intent one role or user writes."""

    jetstream: Sequence[JetStreamIntent] = ()
    kv: Sequence[KvIntent] = ()
    object_store: Sequence[ObjectStoreIntent] = ()
    service: Sequence[ServiceIntent] = ()
    private_inbox: bool = False

    @classmethod
    def of(cls, grants: Grants) -> Intents:
        """The intents a role, user or token writes."""
        return cls(
            grants.jetstream, grants.kv, grants.object_store, grants.service, grants.private_inbox
        )


def jetstream(intent: JetStreamIntent) -> list[str]:
    """Publish entries for one ``jetstream`` intent. With a domain, every API entry is
    granted under ``$JS.<domain>.API`` (forwarded to a server of that domain) and under
    ``$JS.API``: a server in the domain maps the prefix away before it checks permissions."""
    out = _jetstream_api("$JS.API", intent)
    if intent.domain is not None:
        out = _jetstream_api(f"$JS.{intent.domain}.API", intent) + out
    stream = intent.stream
    for consumer in intent.consume:
        out.append(f"$JS.ACK.{stream}.{consumer}.>")
    if intent.consume:
        out.append(f"$JS.FC.{stream}.>")
    if intent.publish:
        out += intent.subjects
    return out


def _jetstream_api(api: str, intent: JetStreamIntent) -> list[str]:
    stream = intent.stream
    out = [f"{api}.STREAM.INFO.{stream}"]
    for consumer in intent.consume:
        out += [
            f"{api}.CONSUMER.INFO.{stream}.{consumer}",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        ]
    if intent.manage:
        out += [f"{api}.STREAM.{verb}.{stream}" for verb in ("CREATE", "UPDATE", "DELETE")]
        out += [f"{api}.STREAM.PURGE.{stream}", f"{api}.STREAM.MSG.DELETE.{stream}"]
        out += [f"{api}.STREAM.MSG.GET.{stream}"]
        out += [
            f"{api}.CONSUMER.CREATE.{stream}",
            f"{api}.CONSUMER.CREATE.{stream}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{stream}.*",
            f"{api}.CONSUMER.DELETE.{stream}.*",
            f"{api}.CONSUMER.INFO.{stream}.*",
            f"{api}.CONSUMER.NAMES.{stream}",
            f"{api}.CONSUMER.LIST.{stream}",
        ]
    return out


def kv(intent: KvIntent) -> list[str]:
    """Publish entries for one ``kv`` intent. Reading a part of a bucket needs direct gets
    (the key is in the subject); the whole bucket also allows message gets and watches."""
    bucket, stream, keys = intent.bucket, f"KV_{intent.bucket}", intent.keys
    out = [f"$JS.API.STREAM.INFO.{stream}"]
    if intent.read:
        out.append(f"$JS.API.DIRECT.GET.{stream}.$KV.{bucket}.{keys}")
        out.append(f"$JS.API.CONSUMER.CREATE.{stream}.*.$KV.{bucket}.{keys}")
        if keys == ">":
            out += [
                f"$JS.API.DIRECT.GET.{stream}",
                f"$JS.API.STREAM.MSG.GET.{stream}",
                f"$JS.API.CONSUMER.CREATE.{stream}",
                f"$JS.API.CONSUMER.INFO.{stream}.*",
            ]
        out.append(f"$JS.FC.{stream}.>")
    if intent.write:
        out.append(f"$KV.{bucket}.{keys}")
    return out


def object_store(intent: ObjectStoreIntent) -> list[str]:
    """Publish entries for one ``object_store`` intent."""
    bucket, stream = intent.bucket, f"OBJ_{intent.bucket}"
    out = [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.$O.{bucket}.M.>",
    ]
    if intent.read:
        out += [
            "$JS.API.STREAM.NAMES",
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    if intent.write:
        out += [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>", f"$JS.API.STREAM.PURGE.{stream}"]
    return out


def _service_subjects(intent: ServiceIntent) -> list[str]:
    if intent.subjects is not None:
        return list(intent.subjects)
    return [intent.name, f"{intent.name}.>"]


def service(intent: ServiceIntent) -> tuple[list[str], list[str]]:
    """(publish, subscribe) entries for one ``service`` intent; serving also needs
    ``response`` (see `compile_intents`)."""
    subjects, name = _service_subjects(intent), intent.name
    publish: list[str] = []
    subscribe: list[str] = []
    if intent.call:
        publish += subjects
        publish += [f"$SRV.{verb}.{name}" for verb in _DISCOVERY]
        publish += [f"$SRV.{verb}.{name}.*" for verb in _DISCOVERY]
    if intent.serve:
        subscribe += subjects
        for verb in _DISCOVERY:
            subscribe += [f"$SRV.{verb}", f"$SRV.{verb}.{name}", f"$SRV.{verb}.{name}.*"]
    return publish, subscribe


def _unique(entries: Iterable[str]) -> tuple[Subject, ...]:
    return tuple(parse_template(entry) for entry in dict.fromkeys(entries))


def compile_intents(intents: Intents) -> Compiled:
    """The publish and subscribe entries (templates parsed) that ``intents`` grant."""
    publish: list[str] = []
    subscribe: list[str] = []
    for stream in intents.jetstream:
        publish += jetstream(stream)
    for bucket in intents.kv:
        publish += kv(bucket)
    for store in intents.object_store:
        publish += object_store(store)
    for svc in intents.service:
        calls, serves = service(svc)
        publish += calls
        subscribe += serves
    if intents.private_inbox:
        subscribe.append(f"{INBOX_VARIABLE}.>")
    responds = any(svc.serve for svc in intents.service)
    return Compiled(_unique(publish), _unique(subscribe), responds)


def describe(intents: Intents) -> list[str]:
    """Each intent and the entries it compiles to, templates unfilled, for reviewers
    (``policy explain``): ``"kv profiles read: publish allow $KV..."``."""
    out: list[str] = []

    def add(label: str, publish: Iterable[str], subscribe: Iterable[str] = ()) -> None:
        out.extend(f"{label}: publish allow {subject}" for subject in publish)
        out.extend(f"{label}: subscribe allow {subject}" for subject in subscribe)

    for stream in intents.jetstream:
        consume = [f"consume {','.join(stream.consume)}"] if stream.consume else []
        domain = [f"domain {stream.domain}"] if stream.domain else []
        uses = " ".join([*domain, *consume, _uses(stream, "publish", "manage")]).strip()
        add(f"jetstream {stream.stream} {uses}", jetstream(stream))
    for bucket in intents.kv:
        add(f"kv {bucket.bucket} {_uses(bucket, 'read', 'write')} keys {bucket.keys}", kv(bucket))
    for store in intents.object_store:
        add(f"object_store {store.bucket} {_uses(store, 'read', 'write')}", object_store(store))
    for svc in intents.service:
        add(f"service {svc.name} {_uses(svc, 'call', 'serve')}", *service(svc))
    if intents.private_inbox:
        add("private_inbox", (), [f"{INBOX_VARIABLE}.>"])
    return out


def client_settings(prefix: str) -> list[tuple[str, str]]:
    """(client, how to set it) for an inbox prefix: what a holder of ``private_inbox`` must
    configure, for reviewers (``policy explain``) and operators."""
    return [
        ("nats-py", f'await nats.connect(url, ..., inbox_prefix="{prefix}")'),
        ("nats.go", f'nats.Connect(url, ..., nats.CustomInboxPrefix("{prefix}"))'),
        ("nats.js", f'connect({{ servers, ..., inboxPrefix: "{prefix}" }})'),
    ]


def _uses(intent: object, *flags: str) -> str:
    return " ".join(flag for flag in flags if getattr(intent, flag))


def _text(subject: Subject) -> str:
    return subject.text if isinstance(subject, Template) else subject


def has_private_inbox(subscribe: Iterable[Subject]) -> bool:
    return any(_text(subject) == f"{INBOX_VARIABLE}.>" for subject in subscribe)


def inbox_exposures(subscribe: Iterable[Subject]) -> list[str]:
    """Subscribe entries that would let a holder of a private inbox read other inboxes:
    anything that reaches into ``_INBOX.>`` or another ``_INBOX_<hash>`` prefix."""
    out = []
    for subject in subscribe:
        text = _text(subject).split(" ")[0]
        if text == f"{INBOX_VARIABLE}.>":
            continue
        plain = text.replace(INBOX_VARIABLE, INBOX_PREFIX + "0" * _INBOX_HEX)
        first = plain.split(".")[0]
        if (
            overlaps(plain, "_INBOX.>")
            or overlaps(plain, f"{INBOX_PREFIX}other.>")
            or first.startswith(INBOX_PREFIX)
        ):
            out.append(text)
    return out
