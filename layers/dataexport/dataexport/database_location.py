"""Where the application's database is, as the deployment says it beside its secret."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseLocation:
    """Host, port and database name given outside the secret; None: take the secret's."""

    host: str | None = None
    port: int | None = None
    dbname: str | None = None
