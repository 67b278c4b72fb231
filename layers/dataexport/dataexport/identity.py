"""Who is calling: taken from the verified token, never from the request body."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

DATA_EXPORT_PERMISSION = "DATA_EXPORT"
# The authorizer context joins permissions with commas: a name holding a comma (or blank) would
# come out on the API's side as other permissions than the token granted.
_PERMISSION_NAME = re.compile(r"[^\s,]{1,256}")
# The longest `sub` and `org` accepted. Stores build keys of two such claims, each escaped (see
# store_keys.py): at this length they fit DynamoDB's 2048-byte partition keys and S3's
# 1024-byte object keys whatever the characters, and no issuer's ids come near it.
MAX_ID_LENGTH = 128
# Characters no id needs, and that logs, terminals and keys misread: controls (C0, C1, DEL),
# invisible format characters (zero-width, bidirectional overrides), lone surrogates, and line
# and paragraph separators. `#`, `/`, spaces and letters of every script stay legal.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _printable_id(value: str) -> str:
    if any(unicodedata.category(char) in _UNPRINTABLE_CATEGORIES for char in value):
        raise ValueError("an id holds a control, format or separator character")
    return value


# The tenant id of the platform's own audit chain (backups belong to no tenant). No token may
# name it, so no tenant's admin can read that chain or append to it.
PLATFORM_ORG_ID = "_platform"


def _tenant_id(value: str) -> str:
    if value == PLATFORM_ORG_ID:
        raise ValueError("the tenant id is reserved for the platform")
    return value


PrintableId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_printable_id)
]


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OPERATOR = "operator"


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, for the audit trail."""

    source_ip: str | None = None
    request_id: str | None = None


class Caller(BaseModel):
    """An authenticated user of one tenant (organization)."""

    model_config = ConfigDict(frozen=True)

    user_id: PrintableId
    org_id: Annotated[PrintableId, AfterValidator(_tenant_id)]
    role: Role
    permissions: frozenset[str] = frozenset()

    @field_validator("permissions")
    @classmethod
    def _plain_permission_names(cls, value: frozenset[str]) -> frozenset[str]:
        if not all(_PERMISSION_NAME.fullmatch(name) for name in value):
            raise ValueError("a permission name is empty, too long, or holds a comma or space")
        return value

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def to_authorizer_context(self) -> dict[str, str]:
        """The flat string map API Gateway forwards from the authorizer to the API."""
        return {
            "sub": self.user_id,
            "org": self.org_id,
            "role": self.role.value,
            "permissions": ",".join(sorted(self.permissions)),
        }

    @classmethod
    def from_authorizer_context(cls, context: Mapping[str, object]) -> Caller:
        raw_permissions = str(context.get("permissions") or "")
        return cls(
            user_id=str(context.get("sub") or ""),
            org_id=str(context.get("org") or ""),
            role=Role(str(context.get("role") or "")),
            permissions=frozenset(p for p in raw_permissions.split(",") if p),
        )
