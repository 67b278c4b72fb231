"""Privacy profiles (SPEC section 6): what an export does to the columns the catalog marks
`sensitive`, and the Python side of each transform.

A profile is a set of transforms. A request names some (`"privacy": ["hash_identifiers"]`), the
dataset may force some on the caller's role (`privacy: {member: [hash_identifiers]}` in its
catalog entry), and the export applies the union: a forced transform cannot be asked away.

Per column, by its `sensitive` mark:
- `ip` with anonymize_ip: the network part only (IPv4 /24, IPv4-mapped IPv6 the same /24 of
  its IPv4 address, other IPv6 /48), written as PostgreSQL's `host()` writes it. Text that is not
  one plain address (a prefix, a zone id, spaces, leading zeros in an IPv4 octet) becomes NULL.
- `identifier` with hash_identifiers: the lowercase hex HMAC-SHA256 of its UTF-8 text, keyed by
  the deployment's hashing secret: stable across exports, unlinkable without the key.
- `email` with mask_email: the first character of the local part, `***`, `@` and the domain
  (split at the last `@`); text without a local part or a domain becomes NULL.
- every sensitive column with drop_sensitive: left out of the export. Naming one in `fields` is
  a 400 naming it; the default fields lose them silently.
- `secret` columns are never in the default fields, and under any profile (or for a member)
  naming one is a 400: only an admin exporting without a profile may have them.
NULL stays NULL everywhere. Filters on a column the profile rewrites or leaves out are refused
(is_null excepted): which rows come back would reveal the raw values (a prefix filter spells them
out). Rewritten columns are strings in every format.

PostgreSQL datasets apply the transforms in SQL (privacy_sql), the audit trail in Python (here);
the two give the same text for the same input, which the integration tests check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dataexport.aggregation import Aggregation
from dataexport.catalog.model import (
    COUNTING_MEASURES,
    PROTECTED_BY,
    Column,
    Dataset,
    FilterOperator,
    PrivacyTransform,
    Sensitivity,
)
from dataexport.errors import InvalidRequest
from dataexport.filters import FilterClause
from dataexport.identity import Caller
from dataexport.nesting import ChildShape, Nesting

# ------------------------------------------------------------------ the hashing key

HMAC_BLOCK_BYTES = 64  # SHA-256's block size (RFC 2104's B)
_INNER_PAD = 0x36
_OUTER_PAD = 0x5C


class HashingKey:
    """The deployment's HMAC key for hash_identifiers. Its text never appears in a repr."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the hashing key is empty")
        self._key = key

    @classmethod
    def from_secret_string(cls, secret: str) -> HashingKey:
        """The key of a Secrets Manager secret: its SecretString's UTF-8 bytes."""
        return cls(secret.encode("utf-8"))

    def digest(self, text: str) -> str:
        """HMAC-SHA256 of `text`'s UTF-8 bytes, in lowercase hex."""
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def pads(self) -> tuple[bytes, bytes]:
        """RFC 2104's (K xor ipad, K xor opad) blocks: with them, HMAC(K, m) is
        sha256(opad_block || sha256(ipad_block || m)), which PostgreSQL computes with sha256()."""
        key = self._key
        if len(key) > HMAC_BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        key = key.ljust(HMAC_BLOCK_BYTES, b"\0")
        return bytes(b ^ _INNER_PAD for b in key), bytes(b ^ _OUTER_PAD for b in key)

    def __repr__(self) -> str:
        return "HashingKey(<redacted>)"


HashingKeySource = Callable[[], HashingKey]


# ------------------------------------------------------------------ the Python transforms

# One plain address: what both PostgreSQL's inet and Python's ipaddress accept alike. Zone ids
# (fe80::1%eth0) only Python takes, prefixes (/24) and leading zeros in IPv4 octets only
# PostgreSQL; privacy_sql refuses the same texts.
IP_CHARACTERS = re.compile(r"[0-9A-Fa-f:.]+")
IPV4_LEADING_ZERO = re.compile(r"\.0[0-9]|(^|:)0[0-9]+\.")
IPV4_PREFIX = 24
IPV6_PREFIX = 48
MAPPED_PREFIX = 96 + IPV4_PREFIX
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def anonymize_ip(value: Any) -> str | None:
    """The network part of an IP address, as PostgreSQL's host() writes it; None if `value` is
    not one plain IPv4 or IPv6 address."""
    if value is None:
        return None
    text = str(value)
    if not IP_CHARACTERS.fullmatch(text) or IPV4_LEADING_ZERO.search(text):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((address, IPV4_PREFIX), strict=False).network_address)
    if address in _MAPPED:
        # PostgreSQL writes the mapped address's last 32 bits as an IPv4 address.
        mapped = address.ipv4_mapped
        assert mapped is not None
        return "::ffff:" + str(anonymize_ip(str(mapped)))
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False).network_address)


EMAIL_MASK = "***"


def mask_email(value: Any) -> str | None:
    """`jane@example.com` -> `j***@example.com`; None without a local part or a domain."""
    if value is None:
        return None
    local, at, domain = str(value).rpartition("@")
    if not at or not local or not domain:
        return None
    return f"{local[0]}{EMAIL_MASK}@{domain}"


def _hasher(key: HashingKey) -> Callable[[Any], str | None]:
    def hash_value(value: Any) -> str | None:
        return None if value is None else key.digest(str(value))

    return hash_value


# ------------------------------------------------------------------ profiles on a dataset


def effective_profile(
    dataset: Dataset, requested: Iterable[PrivacyTransform], role: str | None
) -> frozenset[PrivacyTransform]:
    """The request's transforms and those the dataset forces on `role` (None: none forced,
    as in the steps, which run what the job recorded)."""
    forced = next((items for name, items in dataset.privacy.items() if name == role), [])
    return frozenset(requested) | frozenset(forced)


def canonical(profile: Iterable[PrivacyTransform]) -> list[str]:
    """A profile as jobs, manifests and request hashes keep it: sorted names."""
    return sorted(transform.value for transform in set(profile))


def treatment(
    dataset: Dataset, column: str, profile: frozenset[PrivacyTransform]
) -> PrivacyTransform | None:
    """What `profile` does to the dataset's `column`: see column_treatment."""
    return column_treatment(dataset.column(column), profile)


def column_treatment(
    column: Column, profile: frozenset[PrivacyTransform]
) -> PrivacyTransform | None:
    """What `profile` does to `column`: the transform that rewrites it, DROP_SENSITIVE when
    it is left out, None when it goes out as it is."""
    sensitive = column.sensitive
    if sensitive is None:
        return None
    if PrivacyTransform.DROP_SENSITIVE in profile or (sensitive is Sensitivity.SECRET and profile):
        return PrivacyTransform.DROP_SENSITIVE
    rewrite = PROTECTED_BY.get(sensitive)
    return rewrite if rewrite in profile else None


def hides(dataset: Dataset, column: str, profile: frozenset[PrivacyTransform]) -> bool:
    """Whether the export never shows `column`'s raw values (rewritten or left out)."""
    return treatment(dataset, column, profile) is not None


@dataclass(frozen=True)
class PrivacyPlan:
    """A profile applied to an export's output: which output columns it rewrites, and how."""

    profile: frozenset[PrivacyTransform] = frozenset()
    # Output column name -> the transform rewriting it (never DROP_SENSITIVE: dropped columns
    # are not in the output at all). A flattened child's columns are output columns too.
    rewrites: dict[str, PrivacyTransform] = field(default_factory=dict)
    # Child name -> child column -> its transform, for the query reading the children (nested
    # children are rewritten inside their JSON arrays).
    child_rewrites: dict[str, dict[str, PrivacyTransform]] = field(default_factory=dict)

    @property
    def needs_key(self) -> bool:
        hashing = PrivacyTransform.HASH_IDENTIFIERS
        return hashing in self.rewrites.values() or any(
            hashing in child.values() for child in self.child_rewrites.values()
        )

    def names(self) -> list[str]:
        return canonical(self.profile)

    def row_transform(
        self, fields: Sequence[str], key: HashingKeySource
    ) -> Callable[[list[Any]], list[Any]] | None:
        """A function rewriting one row of `fields` in place (None when nothing changes)."""
        steps: list[tuple[int, Callable[[Any], str | None]]] = []
        for index, name in enumerate(fields):
            rewrite = self.rewrites.get(name)
            if rewrite is PrivacyTransform.ANONYMIZE_IP:
                steps.append((index, anonymize_ip))
            elif rewrite is PrivacyTransform.MASK_EMAIL:
                steps.append((index, mask_email))
            elif rewrite is PrivacyTransform.HASH_IDENTIFIERS:
                steps.append((index, _hasher(key())))
        if not steps:
            return None

        def transform(row: list[Any]) -> list[Any]:
            for index, function in steps:
                row[index] = function(row[index])
            return row

        return transform

    def apply(
        self, fields: Sequence[str], batches: Iterable[list[list[Any]]], key: HashingKeySource
    ) -> Iterator[list[list[Any]]]:
        """`batches` with every row rewritten (rows rendered in Python: the audit trail)."""
        transform = self.row_transform(fields, key)
        iterator = iter(batches)
        try:
            for batch in iterator:
                yield batch if transform is None else [transform(row) for row in batch]
        finally:
            # A reader stopped early (a preview) releases its source now, not when collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


NO_PRIVACY = PrivacyPlan()

# Filters that reveal nothing a hidden column's output does not already show.
HARMLESS_OPERATORS = frozenset({FilterOperator.IS_NULL})


def check_fields(
    dataset: Dataset,
    requested: list[str],
    profile: frozenset[PrivacyTransform],
    caller: Caller | None,
) -> None:
    dropped = [
        name
        for name in requested
        if treatment(dataset, name, profile) is PrivacyTransform.DROP_SENSITIVE
    ]
    if dropped:
        raise InvalidRequest(
            "fields",
            f"Field(s) {', '.join(dropped)} are sensitive and left out by the privacy profile "
            f"({', '.join(sorted(profile))}); remove them.",
            {"sensitive": dropped},
        )
    # The steps resolve without a caller: the role was checked when the job was created.
    if caller is not None and not caller.is_admin:
        secret = [
            name for name in requested if dataset.column(name).sensitive is Sensitivity.SECRET
        ]
        if secret:
            raise InvalidRequest(
                "fields",
                f"Field(s) {', '.join(secret)} are secret; only admins may export them.",
                {"sensitive": secret},
            )


def check_filters(
    dataset: Dataset, filters: list[FilterClause], profile: frozenset[PrivacyTransform]
) -> None:
    """Filters on a column the profile hides would reveal its raw values through the rows
    that come back (a prefix filter spells them out): refused, is_null excepted."""
    for index, clause in enumerate(filters):
        if clause.op not in HARMLESS_OPERATORS and hides(dataset, clause.column, profile):
            raise InvalidRequest(
                f"filters[{index}].field",
                f"{clause.column!r} is sensitive and hidden by the privacy profile "
                f"({', '.join(sorted(profile))}); it can only be filtered with is_null.",
                {"sensitive": [clause.column]},
            )


def check_aggregation(
    dataset: Dataset, aggregation: Aggregation, profile: frozenset[PrivacyTransform]
) -> None:
    """Groups of a rewritten dimension carry the rewritten value; a dropped one cannot be
    grouped by, and a hidden column may only be counted (its min or max is a raw value)."""
    for name in aggregation.dimensions:
        if treatment(dataset, name, profile) is PrivacyTransform.DROP_SENSITIVE:
            raise InvalidRequest(
                "aggregate.group_by",
                f"{name!r} is sensitive and left out by the privacy profile; group by another.",
                {"sensitive": [name]},
            )
    for index, measure in enumerate(aggregation.measures):
        if (
            measure.column is not None
            and measure.function not in COUNTING_MEASURES
            and hides(dataset, measure.column, profile)
        ):
            raise InvalidRequest(
                f"aggregate.measures[{index}].field",
                f"{measure.column!r} is sensitive and hidden by the privacy profile; it can "
                "only be counted.",
                {"sensitive": [measure.column]},
            )


def _rewrite(column: Column, profile: frozenset[PrivacyTransform]) -> PrivacyTransform | None:
    rewrite = column_treatment(column, profile)
    return None if rewrite is PrivacyTransform.DROP_SENSITIVE else rewrite


def privacy_plan(
    dataset: Dataset,
    output: list[str],
    profile: frozenset[PrivacyTransform],
    nesting: Nesting | None = None,
) -> PrivacyPlan:
    """Which of the `output` columns (source columns by name) and of the children of
    `nesting` (without their dropped columns: see protected_nesting) the profile rewrites."""
    rewrites = _rewrites([(name, dataset.column(name)) for name in output], profile)
    child_rewrites = {}
    for child in nesting.children if nesting is not None else ():
        child_rewrites[child.name] = _rewrites([(c.name, c) for c in child.columns], profile)
        if nesting is not None and nesting.shape is ChildShape.FLATTENED:
            # Flattened, the child's columns are output columns of their own.
            rewrites |= {
                child.flattened_name(name): rewrite
                for name, rewrite in child_rewrites[child.name].items()
            }
    return PrivacyPlan(profile=profile, rewrites=rewrites, child_rewrites=child_rewrites)


def _rewrites(
    columns: list[tuple[str, Column]], profile: frozenset[PrivacyTransform]
) -> dict[str, PrivacyTransform]:
    """The transform rewriting each of the named `columns`, for those the profile rewrites."""
    found = ((name, _rewrite(column, profile)) for name, column in columns)
    return {name: rewrite for name, rewrite in found if rewrite is not None}


def protected_nesting(nesting: Nesting, profile: frozenset[PrivacyTransform]) -> Nesting:
    """`nesting` without the child columns the profile leaves out. Children are exported
    whole, so their sensitive columns leave silently, as default fields do."""
    children = []
    for child in nesting.children:
        kept = [
            column
            for column in child.columns
            if column_treatment(column, profile) is not PrivacyTransform.DROP_SENSITIVE
        ]
        if not kept:
            raise InvalidRequest(
                nesting.option,
                f"Every column of {child.name!r} is sensitive and left out by the privacy "
                f"profile ({', '.join(sorted(profile))}).",
            )
        unchanged = len(kept) == len(child.columns)
        children.append(child if unchanged else child.model_copy(update={"columns": kept}))
    return replace(nesting, children=tuple(children))
