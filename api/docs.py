"""The API's interactive docs at /docs: Swagger UI (5.x, which reads OpenAPI 3.1) from the `fastapi-offline`
package's own files, served by this app. No CDN: FastAPI's default page loads Swagger UI from jsDelivr with
no integrity check, and is blank on a machine without internet. The page runs under a CSP that allows
scripts and styles from 'self' only, so its start-up is a served script (`/docs/init.js`), not an inline one
(fastapi-offline's own page inlines it, so only its files are used). Only the files the page needs are
served, from a fixed list."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from ledger.errors import NotFoundError

__all__ = ["DOCS_ASSETS", "DOCS_CSP", "install"]

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DOCS_ASSETS = {  # name -> media type; nothing else of the package is served
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_ASSET_DIR = Path(str(files("fastapi_offline") / "static"))

_INIT_JS = """window.ui = SwaggerUIBundle({
  url: "%(openapi)s",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%(title)s - docs</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """/docs, its start-up script and its assets (create the app with docs_url=None, redoc_url=None)."""
    openapi = app.openapi_url or "/openapi.json"
    page = _PAGE % {"title": app.title}
    init = _INIT_JS % {"openapi": openapi}

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=_HEADERS)

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(init, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise NotFoundError(f"/docs has no asset {name!r}.", hint="Open /docs itself.")
        return FileResponse(_ASSET_DIR / name, media_type=media_type, headers=_HEADERS)
