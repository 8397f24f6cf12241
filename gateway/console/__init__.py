"""The admin console: pages in the browser, served by the gateway itself at /console/.

Its files (static/) need no token: they hold no data. The page logs in through the API,
keeps the login token in the tab's sessionStorage, and reads everything through the API
with it, so the console can never show more than the account's role allows. The browser
libraries (Alpine.js, ECharts) come from the npm registry at set-up (package-lock.json)
and are served from here: a hall's intranet has no internet and the page uses no CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
STATIC = HERE / "static"
MODULES = HERE / "node_modules"
VENDOR = {"alpine.js": "alpinejs/dist/cdn.min.js", "echarts.js": "echarts/dist/echarts.min.js"}
# Alpine.js evaluates its attribute expressions with Function(): 'unsafe-eval', but no
# inline script and nothing from elsewhere; data reaches the page as text (x-text), never HTML
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


class _Static(StaticFiles):
    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    @app.get("/console", include_in_schema=False)
    def console_root():
        return RedirectResponse("/console/")

    @app.get("/console/vendor/{name}", include_in_schema=False)
    def vendor(name: str):
        if name not in VENDOR:
            raise HTTPException(404, "no such library")
        path = MODULES / VENDOR[name]
        if not path.exists():
            raise HTTPException(503, "the console's libraries are not installed: run .ci/setup "
                                     "(npm ci in gateway/console)")
        return FileResponse(path, media_type="text/javascript",
                            headers={**HEADERS, "Cache-Control": "public, max-age=86400"})

    app.mount("/console", _Static(directory=STATIC, html=True), name="console")
