"""Who is calling: taken from the verified token, never from the request body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

DATA_EXPORT_PERMISSION = "DATA_EXPORT"
# The authorizer context joins permissions with commas: a name holding a comma (or blank) would
# come out on the API's side as other permissions than the token granted.
_PERMISSION_NAME = re.compile(r"[^\s,]{1,256}")


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

    user_id: str = Field(min_length=1, max_length=256)
    org_id: str = Field(min_length=1, max_length=256)
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
