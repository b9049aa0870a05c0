"""Builds the Python SDK's wheel (sdk/python, replyhq-sdk) into a directory, emptied first: the
wheel the server hands out at /sdk/python/<wheel>. Run by `make` and by the server's package build
(setup.py), with the setuptools of that environment, offline.

    python scripts/build_python_sdk.py src/replyhq/static/sdk
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import build_meta

SDK = Path(__file__).resolve().parent.parent / "sdk" / "python"


def main(destination: Path) -> None:
    destination = destination.resolve()
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    os.chdir(SDK)  # setuptools builds the project in the working directory
    try:
        print(destination / build_meta.build_wheel(str(destination)))
    finally:
        shutil.rmtree(SDK / "build", ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
