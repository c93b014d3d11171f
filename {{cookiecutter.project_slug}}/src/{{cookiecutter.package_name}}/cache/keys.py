"""Redis key layout of the cache: namespace, tenant, resource, id and schema version.

    {ns}:epoch                              namespace token; replaced to drop everything
    {ns}:gen:{org}                          tenant token; replaced to drop one tenant
    {ns}:ver:{org}:{resource}:{id}          object token; replaced when the object changes
    {ns}:val:{schema}:{org}:{resource}:{id} the value, tagged with the three tokens above

Only value keys carry the schema version: during a rolling deploy old and new code never read
each other's values, yet a write by either one replaces the tokens both of them check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One cached object: its tenant, resource name and id."""

    org_id: uuid.UUID
    resource: str
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CacheKeys:
    """Builds every key from the namespace and the schema version."""

    namespace: str
    schema_version: str

    def epoch(self) -> str:
        """The namespace-wide token."""
        return f"{self.namespace}:epoch"

    def generation(self, org_id: uuid.UUID) -> str:
        """The tenant's token."""
        return f"{self.namespace}:gen:{org_id}"

    def version(self, ref: ObjectRef) -> str:
        """The object's token."""
        return f"{self.namespace}:ver:{ref.org_id}:{ref.resource}:{ref.id}"

    def value(self, ref: ObjectRef) -> str:
        """The object's cached value under this schema version."""
        return f"{self.namespace}:val:{self.schema_version}:{ref.org_id}:{ref.resource}:{ref.id}"
