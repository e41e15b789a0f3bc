"""``python -m app``: serve on ``SERVING_HOST``:``SERVING_PORT`` with the HTTP limits and the
graceful drain of ``app.server`` (plain ``uvicorn app.main:app`` has neither)."""

from app.config import get_settings
from app.server import serve


def main() -> None:
    serve(get_settings())


if __name__ == "__main__":
    main()
