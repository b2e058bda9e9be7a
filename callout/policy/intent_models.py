"""Grants by intent, as policy files write them: JetStream, KV, object store, services.

These are the validation models only; `callout.policy.intents` turns them into subjects.
Stream, consumer, bucket, service and domain names are single NATS tokens from a closed
alphabet (letters, digits, ``_`` and ``-``), so no name can add a wildcard or a token to a
subject. Key filters and service subjects are subjects and may hold templates
(``{{user.name}}``), which are filled and checked at login like every other template.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from callout.policy.fields import PublishSubject

# The alphabet nats-py accepts for bucket names, used for every name an intent takes.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
IntentName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ConsumerSelector = IntentName | Literal["*"]


class _Intent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class JetStreamIntent(_Intent):
    """Use one stream: consume from named pull consumers, publish to it, or manage it."""

    stream: IntentName
    consume: list[ConsumerSelector] = Field(
        default_factory=list,
        description='durable consumers the holder may pull from and ack; "*" = any of them',
    )
    publish: bool = Field(False, description="publish to the stream's subjects, with acks")
    subjects: list[PublishSubject] = Field(
        default_factory=list,
        description="the stream's subjects the holder publishes to (needed with publish)",
    )
    manage: bool = Field(
        False, description="create, update, delete, purge the stream and its consumers"
    )
    domain: IntentName | None = Field(None, description="JetStream domain of the stream")

    @model_validator(mode="after")
    def _coherent(self) -> JetStreamIntent:
        if self.publish and not self.subjects:
            raise ValueError("publish: true needs subjects: the stream subjects to publish to")
        if self.subjects and not self.publish:
            raise ValueError("subjects are only used with publish: true")
        if "*" in self.consume and len(self.consume) > 1:
            raise ValueError('consume: "*" already covers every consumer; list nothing else')
        if not (self.consume or self.publish or self.manage):
            raise ValueError("grants nothing: set consume, publish or manage")
        return self


class KvIntent(_Intent):
    """Read and/or write the keys of one key-value bucket, optionally only some keys."""

    bucket: IntentName
    read: bool = Field(False, description="get keys (and watch them, for the whole bucket)")
    write: bool = Field(False, description="put, create, update and delete keys")
    keys: PublishSubject = Field(">", description='key filter, e.g. "users.{{user.name}}.>"')

    @model_validator(mode="after")
    def _grants_something(self) -> KvIntent:
        if not (self.read or self.write):
            raise ValueError("grants nothing: set read and/or write")
        return self


class ObjectStoreIntent(_Intent):
    """Read and/or write the objects of one object-store bucket."""

    bucket: IntentName
    read: bool = Field(False, description="get objects, their info and the object list")
    write: bool = Field(False, description="put and delete objects (implies reading info)")

    @model_validator(mode="after")
    def _grants_something(self) -> ObjectStoreIntent:
        if not (self.read or self.write):
            raise ValueError("grants nothing: set read and/or write")
        return self


class ServiceIntent(_Intent):
    """Call a request/reply service, or serve it (answering with response permissions)."""

    name: IntentName
    call: bool = Field(False, description="send requests (and discovery pings) to the service")
    serve: bool = Field(False, description="receive its requests and answer them")
    subjects: list[PublishSubject] | None = Field(
        None, min_length=1, description="request subjects; default the name and name.>"
    )

    @model_validator(mode="after")
    def _grants_something(self) -> ServiceIntent:
        if not (self.call or self.serve):
            raise ValueError("grants nothing: set call and/or serve")
        return self
