"""API Gateway TOKEN authorizer: verifies the bearer JWT and hands its identity to the API."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport.auth.tokens import bearer_token, verify_token
from dataexport.config import AuthorizerConfig, cached_config
from dataexport.errors import Unauthenticated

logger = Logger()
tracer = Tracer()

SIGNING_KEY_CACHE_SECONDS = 300


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=APIGatewayAuthorizerTokenEvent)
def lambda_handler(event: APIGatewayAuthorizerTokenEvent, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(AuthorizerConfig)
    signing_key = str(
        parameters.get_secret(config.token_secret_arn, max_age=SIGNING_KEY_CACHE_SECONDS)
    )
    try:
        caller = verify_token(bearer_token(event.authorization_token), signing_key)
    except Unauthenticated:
        logger.info("Refused a request without a valid token")
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
