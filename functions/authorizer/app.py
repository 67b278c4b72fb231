"""API Gateway TOKEN authorizer: verifies the bearer JWT and hands its identity to the API."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport.adapters.aws_clients import secret_string
from dataexport.auth.tokens import SigningKeysUnavailable, TokenRefused, authenticate
from dataexport.config import AuthorizerConfig, cached_config
from dataexport.errors import ConfigurationError

logger = Logger()
tracer = Tracer()

SIGNING_KEY_CACHE_SECONDS = 300


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=APIGatewayAuthorizerTokenEvent)
def lambda_handler(event: APIGatewayAuthorizerTokenEvent, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(AuthorizerConfig)
    try:
        caller = authenticate(
            event.authorization_token, config, shared_key=lambda: _shared_key(config)
        )
    except SigningKeysUnavailable as exc:
        # The issuer's keys could not be fetched, so no token can be checked. A TOKEN authorizer
        # cannot make API Gateway answer 503: "Unauthorized" (401) is the only answer it can
        # choose, and any other failure becomes a 500 with an AuthorizerConfigurationException.
        # So the caller gets 401 and the outage is logged as an error, for alarms.
        logger.error(
            "Could not fetch the token issuer's signing keys",
            extra={"reason": exc.reason.value, "cause": type(exc.__cause__).__name__},
        )
        raise Exception("Unauthorized") from None
    except TokenRefused as exc:
        # The reason category only: never the token, and never a word of it to the caller.
        logger.info("Refused a request without a valid token", extra={"reason": exc.reason.value})
        # API Gateway answers 401 (the UNAUTHORIZED gateway response) for exactly this message.
        raise Exception("Unauthorized") from None
    arn = event.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=caller.user_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=caller.to_authorizer_context(),
    )
    # The policy is cached per token, so it must cover every route the token may call.
    policy.allow_all_routes()
    return policy.asdict()


def _shared_key(config: AuthorizerConfig) -> str:
    """The HS256 key from the TokenSigningSecret, cached for a few minutes."""
    if config.token_secret_arn is None:
        raise ConfigurationError("TOKEN_SECRET_ARN is required when AUTH_MODE is hs256")
    return secret_string(config.token_secret_arn, max_age=SIGNING_KEY_CACHE_SECONDS)
