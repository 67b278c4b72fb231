"""The SQL twin of privacy.py: each transform as an expression over a quoted column reference.

Every fragment gives, for the same text, exactly what privacy.py's Python function gives (the
integration tests compare them on awkward input), so a PostgreSQL export can rewrite its
sensitive columns in the query and still stream through COPY.

Only PostgreSQL 16's core is used, no extension: the application's database need not change.
HMAC-SHA256 is built from core sha256() per RFC 2104 with the key's two padded blocks, which the
reader hands to the session with set_config() as bound values (SESSION_SETTINGS); the query text
only names the settings, so the key is never in SQL text, in COPY's spliced literals or in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dataexport.catalog.model import PrivacyTransform
from dataexport.privacy import HashingKey

# Custom settings (a dotted name needs no extension) holding the HMAC pads, in hex.
INNER_PAD_SETTING = "dataexport.hmac_inner_pad"
OUTER_PAD_SETTING = "dataexport.hmac_outer_pad"


@dataclass(frozen=True)
class SessionSettings:
    """Settings a query needs in its session, set with bound values before it runs."""

    values: Mapping[str, str]

    def __repr__(self) -> str:
        # Key material: never in a log line or an error report.
        return f"SessionSettings({sorted(self.values)}, <redacted>)"


def hashing_settings(key: HashingKey) -> SessionSettings:
    inner, outer = key.pads()
    return SessionSettings({INNER_PAD_SETTING: inner.hex(), OUTER_PAD_SETTING: outer.hex()})


def _setting_bytes(name: str) -> str:
    # A scalar subquery: PostgreSQL evaluates it once per query, not once per row.
    return f"(SELECT decode(current_setting('{name}'), 'hex'))"


def _text(reference: str) -> str:
    return f"CAST({reference} AS text)"


def hmac_sha256(reference: str) -> str:
    """Lowercase hex HMAC-SHA256 of the column's UTF-8 text (NULL stays NULL)."""
    message = f"convert_to({_text(reference)}, 'UTF8')"
    inner = f"sha256({_setting_bytes(INNER_PAD_SETTING)} || {message})"
    return f"encode(sha256({_setting_bytes(OUTER_PAD_SETTING)} || {inner}), 'hex')"


def anonymized_ip(reference: str) -> str:
    """The address's network as host() writes it: IPv4 /24, IPv4-mapped /120, IPv6 /48; NULL
    for text that is not one plain address (privacy.anonymize_ip refuses the same)."""
    text = _text(reference)
    address = f"CAST({text} AS inet)"
    prefix = (
        f"CASE WHEN family({address}) = 4 THEN 24"
        f" WHEN {address} << inet '::ffff:0.0.0.0/96' THEN 120 ELSE 48 END"
    )
    # CASE evaluates the cast only for rows that pass the checks, so bad text never raises.
    return (
        f"CASE WHEN {text} ~ '^[0-9A-Fa-f:.]+$'"
        f" AND {text} !~ '\\.0[0-9]|(^|:)0[0-9]+\\.'"
        f" AND pg_input_is_valid({text}, 'inet')"
        f" THEN host(network(set_masklen({address}, {prefix}))) END"
    )


def masked_email(reference: str) -> str:
    """First character of the local part, ***, @ and the domain (split at the last @)."""
    text = _text(reference)
    last_at = f"strpos(reverse({text}), '@')"  # from the end: 1 when the text ends with @
    return (
        f"CASE WHEN {last_at} BETWEEN 2 AND length({text}) - 1"
        f" THEN left({text}, 1) || '***@' || right({text}, {last_at} - 1) END"
    )


def rewritten(transform: PrivacyTransform, reference: str) -> str:
    """`reference` (a quoted catalog name) rewritten by `transform`."""
    if transform is PrivacyTransform.HASH_IDENTIFIERS:
        return hmac_sha256(reference)
    if transform is PrivacyTransform.ANONYMIZE_IP:
        return anonymized_ip(reference)
    if transform is PrivacyTransform.MASK_EMAIL:
        return masked_email(reference)
    raise ValueError(f"{transform.value} does not rewrite a column")
