"""The hashing key of the hash_identifiers privacy profile, from Secrets Manager.

The secret (HashingSecret in the template) is generated at deployment and never leaves AWS but
to the functions that render rows; its SecretString's bytes are the HMAC key. Cached a few
minutes per process, like the database secret; the key is never logged.
"""

from __future__ import annotations

from dataexport.adapters.aws_clients import secret_string
from dataexport.privacy import HashingKey

SECRET_CACHE_SECONDS = 300


def read_hashing_key(secret_arn: str) -> HashingKey:
    raw = secret_string(secret_arn, max_age=SECRET_CACHE_SECONDS)
    return HashingKey.from_secret_string(raw)
