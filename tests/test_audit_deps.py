"""`make audit`'s dependency audits say they were skipped when their databases are unreachable,
instead of passing quietly, and run when a database answers."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from scripts import audit_deps


class _Fake(http.server.BaseHTTPRequestHandler):
    """A vulnerability service: /ok answers as PyPI's release JSON does, anything else 404."""

    def _answer(self) -> None:
        if self.path.startswith("/ok/"):
            body = json.dumps({"info": {}, "vulnerabilities": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def fake_service() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_unreachable_databases_are_reported_as_skipped(
    fake_service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit_deps, "PYPI_RELEASE", fake_service + "/gone/{version}")
    monkeypatch.setattr(audit_deps, "NPM_ADVISORIES", "http://127.0.0.1:9/refused")
    assert audit_deps.main() == 0
    out = capsys.readouterr().out
    assert "pip-audit: SKIPPED, the vulnerability database is unreachable (HTTP 404" in out
    assert "npm audit: SKIPPED, the advisory database is unreachable" in out


def test_a_reachable_database_runs_the_audit(
    fake_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], **_: object) -> object:
        ran.append(command)
        return type("Done", (), {"returncode": 1})()  # a vulnerability was found

    monkeypatch.setattr(audit_deps, "PYPI_RELEASE", fake_service + "/ok/{version}")
    monkeypatch.setattr(audit_deps.subprocess, "run", run)
    assert audit_deps.audit_python() == 1
    assert ran[0][1:4] == ["-m", "pip_audit", "--strict"]
