"""The demo page at ``/``: plain HTML, CSS and JavaScript from ``app/static/demo/`` (no build
step, no CDN). It only calls the public REST API, with the API key a person types in, so the
page itself is served without one."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static" / "demo"
# The page loads only its own script and style, shows pictures the person chose (blob:) and the
# explanations' PNGs (data:), calls only this server, and is never framed (clickjacking).
HEADERS = {
    "Cache-Control": "no-cache",  # revalidated each time: a new page never runs an old script
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
FILES = {"/": "index.html", "/demo/demo.js": "demo.js", "/demo/demo.css": "demo.css"}
PATHS = frozenset(FILES)

router = APIRouter(include_in_schema=False)


def _file_route(path: str, name: str) -> None:
    async def serve() -> FileResponse:
        return FileResponse(STATIC / name, headers=HEADERS)

    router.add_api_route(path, serve, methods=["GET"], name=f"demo_{name}")


for _path, _name in FILES.items():
    _file_route(_path, _name)
