"""Every key built from more than one value (DynamoDB keys, S3 object keys), built here only.

A key joins its parts with `#` (DynamoDB) or `/` (S3). Parts such as a token's `org` and `sub`
are chosen by whoever issues tokens and may hold either character, so each part is escaped
before it is joined: `%` becomes `%25`, `#` `%23`, `/` `%2F`, and a part made only of dots
(`.`, `..`) has each dot written `%2E`, so no part reads as a path step in a URL. An escaped
part holds no separator, so a key splits back into exactly the parts it was made of: two
different tuples of parts never share a key. Org `a#b` with user `c` and org `a` with user `b#c`
get `rate#a%23b#c` and `rate#a#b%23c`; org `a/b` never lands under org `a`'s prefix.

What the stores rely on holds as well:
- a part with none of those characters is written as it is, so keys stay readable
  (`rate#org_acme#u1`) and sort keys made of fixed-width parts (timestamps, slot numbers)
  keep their order;
- `key_prefix(*parts)` begins exactly the keys whose leading parts are `parts`, so a
  `begins_with` query (or an IAM `LeadingKeys` pattern such as `retention#*`) on it finds those
  keys and no others.
Keys of different kinds that share a table (the ControlTable's) begin with a part naming their
kind (`rate`, `live`, `principal`, ...), so they cannot meet either.
"""

from __future__ import annotations

KEY_SEPARATOR = "#"
PATH_SEPARATOR = "/"
_ESCAPES = str.maketrans({"%": "%25", "#": "%23", "/": "%2F"})


def key_part(value: str) -> str:
    """`value` as one part of a key: without `#` or `/`, and never `.` or `..`."""
    if value and value.strip(".") == "":
        return "%2E" * len(value)
    return value.translate(_ESCAPES)


def composite_key(*parts: str) -> str:
    """The DynamoDB key of `parts`, each escaped, joined with `#`."""
    return KEY_SEPARATOR.join(key_part(part) for part in parts)


def key_prefix(*parts: str) -> str:
    """What every key whose leading parts are `parts` begins with, and no other key."""
    return composite_key(*parts) + KEY_SEPARATOR


def object_prefix(*parts: str) -> str:
    """The S3 prefix (`a/b/`) of `parts`, each escaped: a folder no other tuple shares."""
    return "".join(key_part(part) + PATH_SEPARATOR for part in parts)


# ----------------------------------------------------------------- ControlTable
def rate_bucket_key(org_id: str, user_id: str) -> str:
    """A user's rate-limit slots."""
    return composite_key("rate", org_id, user_id)


def running_slots_key(org_id: str) -> str:
    """A tenant's running-export slots."""
    return composite_key("running", org_id)


def slot_key(index: int) -> str:
    """One slot of a rate bucket or of the running slots, in order."""
    return composite_key("slot", f"{index:04d}")


def live_request_key(org_id: str, user_id: str) -> str:
    """A user's live requests (each item: a request hash and the job it was folded into)."""
    return composite_key("live", org_id, user_id)


def principal_key(org_id: str) -> str:
    """A tenant's users' latest claims (each item: a user id)."""
    return composite_key("principal", org_id)


def retention_key(org_id: str) -> str:
    """A tenant's retention policies; IAM lets the read-only functions have `retention#*`."""
    return composite_key("retention", org_id)


def checkpoint_keys(job_id: str, index: int) -> tuple[str, str]:
    """The checkpoint of partition `index` of a job."""
    return composite_key("export", job_id), composite_key("partition", f"{index:05d}")


# ----------------------------------------------------------------- other tables
def job_owner_key(org_id: str, owner_id: str) -> str:
    """The ExportsTable owner index's key: one user's jobs."""
    return composite_key(org_id, owner_id)


def idempotency_key(org_id: str, user_id: str, key: str) -> str:
    """An `Idempotency-Key` header's value, scoped to the user who sent it."""
    return composite_key(org_id, user_id, key)


RUN_KEY_PREFIX = key_prefix("run")


def run_key(scheduled_for: str, trigger: str) -> str:
    """A schedule run's sort key; `scheduled_for` is fixed-width sortable UTC text, so runs
    sort by the time they were scheduled for."""
    return composite_key("run", scheduled_for, trigger)


BACKUP_LOCK_KEY = composite_key("lock", "database")


# ----------------------------------------------------------------- the exports bucket
def staging_prefix(job_id: str) -> str:
    """Where a job's steps write its parts before they are assembled."""
    return object_prefix("staging", job_id)


def export_prefix(org_id: str, job_id: str) -> str:
    """Where everything a job leaves in the bucket lives: its file, or its files and manifest."""
    return object_prefix("exports", org_id, job_id)
