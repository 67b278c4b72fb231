"""GET /v1/openapi.json and GET /v1/docs: the document and Swagger UI, with no token.

The page and its assets are served by the API itself (no CDN, no outside validator), so the
docs work wherever the API does, offline included. The Swagger UI files are the ones Powertools
ships for its own offline page: the version comes with the layer's pinned Powertools.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi import swagger_ui
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam

from dataexport.api.openapi_document import served_document, server_url_of

SWAGGER_UI_DIR: Final = Path(swagger_ui.__file__).parent

# Asset name in the URL -> (file in SWAGGER_UI_DIR, content type)
SWAGGER_UI_ASSETS: Final = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
}

# Relative URLs: the page works under a stage (/Prod/v1/docs) and without one (/v1/docs).
DOCS_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dataexport API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/swagger-initializer.js"></script>
</body>
</html>
"""

# validatorUrl null: Swagger UI would otherwise send the document to an outside validator.
DOCS_INITIALIZER: Final = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""

# Scripts and styles only from this API; requests may go anywhere (a download redirects to S3).
DOCS_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src *; frame-ancestors 'none'"
)
ASSET_CACHE: Final = "public, max-age=86400"


@cache
def _asset(file_name: str) -> str:
    return (SWAGGER_UI_DIR / file_name).read_text(encoding="utf-8")


def register_docs(app: APIGatewayRestResolver) -> None:
    """Add the document and the docs page to `app` (they are not in the document)."""

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi_document() -> Response[str]:
        event = app.current_event
        context = event.raw_event.get("requestContext") or {}
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=served_document(app, server_url_of(context, event.path)),
        )

    @app.get("/v1/docs", include_in_schema=False)
    def docs_page() -> Response[str]:
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=DOCS_PAGE,
            headers={"Content-Security-Policy": DOCS_SECURITY_POLICY},
        )

    @app.get("/v1/docs/<asset>", include_in_schema=False)
    def docs_asset(asset: Annotated[str, PathParam(max_length=64)]) -> Response[str]:
        if asset == "swagger-initializer.js":
            body, content_type = DOCS_INITIALIZER, SWAGGER_UI_ASSETS["swagger-ui-bundle.js"][1]
        elif asset in SWAGGER_UI_ASSETS:
            file_name, content_type = SWAGGER_UI_ASSETS[asset]
            body = _asset(file_name)
        else:
            raise NotFoundError(asset)
        return Response(
            status_code=200,
            content_type=content_type,
            body=body,
            headers={"Cache-Control": ASSET_CACHE},
        )
