"""The AWS clients a process keeps once made, forgotten when a test process changes identity.

In Lambda a process serves one function, so the product makes each client once (aws_clients.py,
pynamodb's connection per model, Powertools' secrets provider, boto3's default session) with
the credentials it finds then. A test that calls the product's code as one function and then as
another (`LocalRuntime.as_function`) must not sign the second function's calls with the first
one's role: it starts each identity with no client made, as a new execution environment would.
"""

from __future__ import annotations

import boto3
from aws_lambda_powertools.utilities.parameters import constants as parameter_providers
from pynamodb.models import Model

from dataexport.adapters import aws_clients


def _model_classes() -> list[type[Model]]:
    found: list[type[Model]] = []
    pending: list[type[Model]] = [Model]
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found


def forget_clients() -> None:
    """Drop every cached client and session, so the next call makes one with the credentials
    in os.environ now."""
    boto3.DEFAULT_SESSION = None
    for client in (
        aws_clients.s3_client,
        aws_clients.sfn_client,
        aws_clients.scheduler_client,
        aws_clients.ses_client,
        aws_clients.events_client,
        aws_clients.secrets_provider,
    ):
        client.cache_clear()
    parameter_providers.DEFAULT_PROVIDERS.clear()
    for model in _model_classes():
        model._connection = None
