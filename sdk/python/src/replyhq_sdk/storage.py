"""Where the SDK keeps its device id, its offline queue and its read positions, so that a
program restarted offline still sends what the user wrote, once. Anything with these three
methods fits (a keychain, a database row...)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def remove(self, key: str) -> None: ...


class MemoryStorage:
    """Kept in memory only: lost when the process ends (the default)."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def set(self, key: str, value: str) -> None:
        self.items[key] = value

    def remove(self, key: str) -> None:
        self.items.pop(key, None)


class FileStorage:
    """One JSON file, rewritten atomically (a crash leaves the old or the new file, never half).
    For one process at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            loaded = {}
        self.items: dict[str, str] = (
            {k: v for k, v in loaded.items() if isinstance(v, str)}
            if isinstance(loaded, dict)
            else {}
        )

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def set(self, key: str, value: str) -> None:
        self.items[key] = value
        self._write()

    def remove(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(fd, "w") as file:
            json.dump(self.items, file)
        os.replace(temporary, self.path)
