"""Known vulnerabilities of our dependencies: pip-audit for Python, npm audit for both npm trees.

Each audit needs its vulnerability database on the internet. Where that database cannot be
reached (our build machines reach only package downloads), the audit is skipped with a line that
says so, instead of passing quietly: pip-audit would otherwise report every package as "not found
on PyPI" and exit 0. Exit status: 1 if an audit ran and found something (or failed), else 0.

Usage: python scripts/audit_deps.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pip-audit's default service asks for each release (name and version) and reads `vulnerabilities`.
PYPI_RELEASE = "https://pypi.org/pypi/pip-audit/{version}/json"
NPM_ADVISORIES = "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk"
NPM_TREES = [ROOT, ROOT / "web", ROOT / "sdk" / "js"]


def _unreachable(request: urllib.request.Request, must_have: str | None = None) -> str | None:
    """Why the service cannot answer, or None when it can."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (fixed https URLs)
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {request.full_url}"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        return f"{request.full_url}: {exc}"
    if must_have and must_have not in body:
        return f"{request.full_url} answers without `{must_have}`"
    return None


def audit_python() -> int:
    release = PYPI_RELEASE.format(version=metadata.version("pip-audit"))
    why = _unreachable(urllib.request.Request(release), must_have="vulnerabilities")  # noqa: S310
    if why:
        print(f"pip-audit: SKIPPED, the vulnerability database is unreachable ({why})")
        return 0
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--strict",
        "--skip-editable",
        "--progress-spinner=off",
    ]
    return subprocess.run(command, check=False).returncode  # noqa: S603 (our own interpreter)


def audit_npm() -> int:
    probe = urllib.request.Request(
        NPM_ADVISORIES, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    why = _unreachable(probe)
    if why:
        print(f"npm audit: SKIPPED, the advisory database is unreachable ({why})")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("npm audit: FAILED, npm is not installed")
        return 1
    status = 0
    for tree in NPM_TREES:
        print(f"npm audit: {tree.relative_to(ROOT) or '.'}")
        done = subprocess.run([npm, "audit", "--audit-level=high"], cwd=tree, check=False)  # noqa: S603
        status = status or done.returncode
    return status


def main() -> int:
    return max(audit_python(), audit_npm())


if __name__ == "__main__":
    sys.exit(main())
