"""Package build hook: the wheel ships the dashboard and messenger compiled from web/ into
replyhq/static/ (built here with npm; installing or running the package needs no Node), and the
Python SDK's own wheel (sdk/python) in replyhq/static/sdk/, which the server hands out.

Everything else about the package is in pyproject.toml. Editable installs (`make dev`,
`make test`) skip this: the Makefile builds web/ when its sources change.
"""

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
SDK_PYTHON = ROOT / "sdk" / "python"
BUILD_SDK = ROOT / "scripts" / "build_python_sdk.py"


class BuildPyWithWeb(build_py):
    def run(self) -> None:
        if not self.editable_mode and (WEB / "package.json").is_file():
            npm = shutil.which("npm")
            if npm is None:
                raise SystemExit("building the replyhq package needs Node 20 and npm (for web/)")
            if not (WEB / "node_modules").is_dir():
                subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
            subprocess.run([npm, "run", "build"], cwd=WEB, check=True)
        if not self.editable_mode and (SDK_PYTHON / "pyproject.toml").is_file():
            wheels = ROOT / "src" / "replyhq" / "static" / "sdk"
            subprocess.run([sys.executable, str(BUILD_SDK), str(wheels)], check=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithWeb})
