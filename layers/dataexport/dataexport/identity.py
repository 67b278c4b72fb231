"""Who is calling: taken from the verified token, never from the request body."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DATA_EXPORT_PERMISSION = "DATA_EXPORT"


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OPERATOR = "operator"


class Caller(BaseModel):
    """An authenticated user of one tenant (organization)."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1, max_length=256)
    org_id: str = Field(min_length=1, max_length=256)
    role: Role
    permissions: frozenset[str] = frozenset()

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
