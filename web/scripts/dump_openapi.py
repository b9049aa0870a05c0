"""Write the server's OpenAPI schema (the source of the dashboard's typed API client).

Building the schema needs settings but no reachable database or Redis: dummy URLs do.
Usage: python web/scripts/dump_openapi.py web/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from replyhq.app import create_app
from replyhq.settings import Settings


def main(target: str) -> None:
    settings = Settings(
        database_url="postgresql://schema@127.0.0.1:9/schema",  # never connected to
        redis_url="redis://127.0.0.1:9/0",
    )
    schema = json.dumps(create_app(settings).openapi(), indent=1, sort_keys=True) + "\n"
    path = Path(target)
    if not path.exists() or path.read_text() != schema:  # untouched: no rebuild downstream
        path.write_text(schema)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "openapi.json")
