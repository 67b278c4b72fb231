"""A dataset with every kind of sensitive column, and awkward values for each transform."""

from __future__ import annotations

from typing import Any

from dataexport.catalog.model import Dataset


def people_dataset(source: str = "privacy.people", **changes: Any) -> Dataset:
    declaration: dict[str, Any] = {
        "name": "people",
        "title": "People",
        "source": source,
        "tenant_column": "org_id",
        "owner_column": "owner_id",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "user_name", "type": "string", "label": "User", "sensitive": "identifier"},
            {"name": "account", "type": "integer", "label": "Account", "sensitive": "identifier"},
            {"name": "email", "type": "string", "label": "Email", "sensitive": "email"},
            {"name": "ip", "type": "string", "label": "IP", "sensitive": "ip"},
            {"name": "api_key", "type": "string", "label": "API key", "sensitive": "secret"},
            {"name": "note", "type": "string", "label": "Note"},
        ],
        "filters": [
            {"column": "user_name", "operators": ["eq", "prefix", "is_null"]},
            {"column": "note", "operators": ["eq"]},
            {"column": "api_key", "operators": ["eq"]},
        ],
        "default_sort": [{"column": "id", "direction": "asc"}],
        "roles": ["member", "admin"],
        "privacy": {"member": ["hash_identifiers"]},
    }
    declaration.update(changes)
    return Dataset.model_validate(declaration)


IP_INPUTS: list[str | None] = [
    None,
    "",
    "192.0.2.33",
    "0.0.0.0",  # noqa: S104 - an address to anonymize, not one to bind
    "255.255.255.255",
    "10.1.2.3",
    "2001:db8:1:2::5",
    "2001:DB8:ABCD:12:0:0:0:1",
    "2001:0db8:0000::1",
    "::1",
    "::",
    "1::",
    "0:0:1::",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::ffff:192.0.2.33",
    "::FFFF:c000:221",
    "::ffff:0.0.0.0",
    "::1.2.3.4",
    "fe80::1%eth0",
    "192.0.2.0/24",
    "2001:db8::/32",
    " 192.0.2.1",
    "192.0.2.1 ",
    "192.0.2.1\n",
    "192.168.01.1",
    "::ffff:01.2.3.4",
    "1.2.3.04",
    "0.1.2.3",
    "10.1",
    "1.2.3",
    "256.1.1.1",
    "0x1.2.3.4",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    "\u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits
    "not an address",
    "::ffff:1.2.3.4.5",
    "12345::",
]

EMAIL_INPUTS: list[str | None] = [
    None,
    "",
    "jane@example.com",
    "J@EXAMPLE.COM",
    "j@x",
    "@example.com",
    "jane@",
    "@",
    "@@",
    "no-at-sign",
    "a@b@example.com",
    '"quoted@local"@example.com',
    "élodie.müller@bücher.de",
    "李@例子.中国",
    "😀smile@emoji.example",
    "e\u0301clair@example.com",
    "=cmd@evil.example",
    "  spaced@example.com ",
    "line\nbreak@example.com",
    "x" * 300 + "@example.com",
]

IDENTIFIER_INPUTS: list[str | None] = [
    None,
    "",
    "alice",
    "Alice",
    "sess_01J9Z",
    "élodie",
    "😀",
    "line\nbreak",
    "'; DROP TABLE x; --",
    "x" * 1000,
]
