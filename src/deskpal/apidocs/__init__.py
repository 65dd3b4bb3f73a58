"""The interactive API docs at /docs, served entirely by deskpal (issue 10, point 14).

FastAPI's default page loads Swagger UI's script and styles from a public CDN, so without internet
access, or under a Content-Security-Policy, /docs was a blank page. The assets come from the
`fastapi-offline` package instead (it ships Swagger UI's dist files; pinned by a lower bound in
pyproject.toml) and are served under /docs-assets, beside the one file of deskpal's own: the script
that starts Swagger UI. FastAPI's `get_swagger_ui_html` writes that start-up code inline, which a
CSP without 'unsafe-inline' refuses, so the page is deskpal's own: it has no inline script or
style at all and is sent with a CSP that allows only deskpal's own origin (plus data: images,
which Swagger UI's stylesheet uses for its icons).

ReDoc is off: its bundle needs inline styles and blob: workers, which such a policy forbids, and
Swagger UI already shows the whole document.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"
# What the docs page may load: its own origin only. Swagger UI's stylesheet draws its icons from
# data: URIs; everything else (the bundle, the start-up script, /openapi.json, "Try it out") is
# same-origin. No 'unsafe-inline', no 'unsafe-eval'.
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js" data-openapi-url="{openapi_url}" data-config="{config}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve /docs and its assets from the app; the app must be made with docs_url=redoc_url=None."""
    assert app.docs_url is None and app.redoc_url is None, "deskpal serves its own /docs"
    app.mount(
        ASSETS_URL,
        StaticFiles(packages=[("fastapi_offline", "static"), ("deskpal.apidocs", "static")]),
        name="docs-assets",
    )
    config: dict[str, Any] = {**swagger_ui_default_parameters, **(app.swagger_ui_parameters or {})}
    # The online validator badge would fetch from a public host: off.
    config["validatorUrl"] = None

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = _PAGE.format(
            title=html.escape(f"{app.title} - API docs"),
            assets=html.escape(f"{root}{ASSETS_URL}"),
            openapi_url=html.escape(f"{root}{app.openapi_url}"),
            config=html.escape(json.dumps(jsonable_encoder(config))),
        )
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": DOCS_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    # A plain Starlette route, as FastAPI's own /docs is: not an API operation, not in the schema.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
