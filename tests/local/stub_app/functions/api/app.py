"""Stub API function: echoes what API Gateway sent, crashes on /v1/crash, reads the database."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pg8000.native


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    resource = event["resource"]
    if resource == "/v1/crash":
        raise RuntimeError("handler bug")
    body = _database_identity() if resource == "/v1/database" else _echo(event, context)
    return {
        "statusCode": 201 if event["httpMethod"] == "POST" else 200,
        "headers": {"Content-Type": "application/json", "X-Single": "one"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_context = event["requestContext"]
    return {
        "resource": event["resource"],
        "path": event["path"],
        "httpMethod": event["httpMethod"],
        "pathParameters": event["pathParameters"],
        "queryStringParameters": event["queryStringParameters"],
        "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
        "stageVariables": event["stageVariables"],
        "body": event["body"],
        "isBase64Encoded": event["isBase64Encoded"],
        "authorizer": request_context["authorizer"],
        "contextPath": request_context["path"],
        "resourcePath": request_context["resourcePath"],
        "stage": request_context["stage"],
        "sourceIp": request_context["identity"]["sourceIp"],
        "greeting": os.environ.get("GREETING"),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def _database_identity() -> dict[str, Any]:
    secrets = boto3.client("secretsmanager")
    raw = secrets.get_secret_value(SecretId=os.environ["DATABASE_SECRET_ARN"])["SecretString"]
    secret = json.loads(raw)
    place: dict[str, Any] = (
        {"unix_sock": f"{secret['host']}/.s.PGSQL.{secret['port']}"}
        if str(secret["host"]).startswith("/")
        else {"host": secret["host"], "port": secret["port"]}
    )
    connection = pg8000.native.Connection(
        secret["username"], database=secret["dbname"], password=secret["password"] or None, **place
    )
    try:
        ((user, read_only),) = connection.run(
            "SELECT current_user, current_setting('default_transaction_read_only')"
        )
    finally:
        connection.close()
    return {"user": user, "read_only": read_only}
