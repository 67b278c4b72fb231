"""Stub TOKEN authorizer: fixed test tokens, or an HS256 JWT checked with the signing secret."""

from __future__ import annotations

import os
from typing import Any

import boto3
import jwt


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    token = str(event["authorizationToken"]).removeprefix("Bearer ").strip()
    method_arn = str(event["methodArn"])
    if token == "crash":
        raise RuntimeError("authorizer bug")
    if token == "deny":
        return _policy("someone", "Deny", method_arn, {})
    if token.startswith("allow-"):
        return _policy(
            token.removeprefix("allow-"), "Allow", _all_routes(method_arn), _fixed_context()
        )
    if token.count(".") == 2:
        claims = _verified_claims(token)
        return _policy(
            str(claims["sub"]),
            "Allow",
            _all_routes(method_arn),
            {"org": claims["org"], "role": claims["role"]},
        )
    # API Gateway answers 401 for exactly this message.
    raise Exception("Unauthorized")


def _fixed_context() -> dict[str, Any]:
    return {"org": "org_test", "admin": True, "level": 3}


def _all_routes(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api/stage/METHOD/path -> every route of the stage
    api_and_stage = "/".join(method_arn.split("/")[:2])
    return f"{api_and_stage}/*"


def _policy(principal: str, effect: str, resource: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def _verified_claims(token: str) -> dict[str, Any]:
    secrets = boto3.client("secretsmanager")
    key = secrets.get_secret_value(SecretId=os.environ["TOKEN_SECRET_ARN"])["SecretString"]
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise Exception("Unauthorized") from None
    return claims
