"""Settings: every variable of API.md is a documented setting that takes effect, and production
refuses to start with a development secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from replyhq.app import create_app
from replyhq.settings import DEV_JWT_REFRESH_SECRET, DEV_JWT_SECRET, DEV_MASTER_KEY, Settings
from tests.conftest import Servers, free_port, make_settings

# The environment of API.md: variable -> (documented default, a value to set, how it reads back).
API_VARIABLES: dict[str, tuple[object, str, object]] = {
    "DATABASE_URL": (None, "postgresql://u@db.example:5432/x", "postgresql://u@db.example:5432/x"),
    "REDIS_URL": (None, "redis://cache.example:6379/1", "redis://cache.example:6379/1"),
    "MASTER_API_KEY": (DEV_MASTER_KEY, "m" * 40, "m" * 40),
    "ALLOWED_ORIGINS": (
        "",
        "https://a.example, https://b.example",
        "https://a.example, https://b.example",
    ),
    "JWT_SECRET": (DEV_JWT_SECRET, "j" * 40, "j" * 40),
    "JWT_REFRESH_SECRET": (DEV_JWT_REFRESH_SECRET, "r" * 40, "r" * 40),
    "RATE_LIMIT_AUTH": ("20/15minutes", "7/minute", "7/minute"),
    "RATE_LIMIT_V1": ("100/15minutes", "50/minute", "50/minute"),
    "MAX_BODY_BYTES": (10240, "20000", 20000),
    "DATA_DIR": (Path(".replyhq-data"), "/var/lib/replyhq", Path("/var/lib/replyhq")),
    "LOG_LEVEL": ("INFO", "debug", "DEBUG"),
    "SENTRY_DSN": (None, "https://key@sentry.example/1", "https://key@sentry.example/1"),
}
SECRETS = ("MASTER_API_KEY", "JWT_SECRET", "JWT_REFRESH_SECRET")


def _clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any ReplyHQ setting, plus `extra`."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(extra)
    return env


@pytest.fixture
def no_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


@pytest.mark.usefixtures("no_settings_env")
def test_every_api_variable_is_a_documented_setting_with_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    for variable, (default, _, _) in API_VARIABLES.items():
        field = variable.lower()
        assert field in Settings.model_fields, variable
        assert Settings.model_fields[field].description, f"{variable} is not documented"
        assert getattr(defaults, field) == default, variable
    for variable, (_, value, _) in API_VARIABLES.items():
        monkeypatch.setenv(variable, value)
    configured = Settings()
    for variable, (_, _, expected) in API_VARIABLES.items():
        assert getattr(configured, variable.lower()) == expected, variable
    assert configured.origins == ["https://a.example", "https://b.example"]


@pytest.mark.usefixtures("no_settings_env")
def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MASTER_API_KEY=from-the-dotenv-file\nMAX_BODY_BYTES=4096\n")
    settings = Settings()
    assert settings.master_api_key == "from-the-dotenv-file"
    assert settings.max_body_bytes == 4096


@pytest.mark.usefixtures("no_settings_env")
def test_bad_values_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "lots")
    with pytest.raises(ValueError, match="max_body_bytes"):
        Settings()


async def test_settings_take_effect(servers: Servers) -> None:
    settings = make_settings(
        servers,
        max_body_bytes=1000,
        master_api_key="operator-key-for-this-test",
        allowed_origins=" https://a.example ,https://b.example",
    )
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            big = await http.post(
                "/setup/apps",
                headers={"X-Master-Key": "operator-key-for-this-test"},
                json={"name": "x" * 1000},
            )
            assert big.status_code == 413
            assert "1000 bytes" in big.json()["error"]
            dev_key = await http.get("/setup/apps", headers={"X-Master-Key": DEV_MASTER_KEY})
            assert dev_key.status_code == 401
            own_key = await http.get(
                "/setup/apps", headers={"X-Master-Key": "operator-key-for-this-test"}
            )
            assert own_key.status_code == 200
            preflight = await http.options(
                "/setup/apps",
                headers={"Origin": "https://b.example", "Access-Control-Request-Method": "GET"},
            )
            assert preflight.headers["access-control-allow-origin"] == "https://b.example"


# --- production ------------------------------------------------------------------------


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replyhq.cli", "serve", "--port", str(free_port())],
        env=_clean_env(ENVIRONMENT="production", DATA_DIR=str(tmp_path / "data"), **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({}, SECRETS),
        ({"MASTER_API_KEY": "k" * 32}, ("JWT_SECRET", "JWT_REFRESH_SECRET")),
        (
            {"MASTER_API_KEY": "k" * 32, "JWT_SECRET": "j" * 32, "JWT_REFRESH_SECRET": "short"},
            ("JWT_REFRESH_SECRET",),
        ),
        (
            {"MASTER_API_KEY": "", "JWT_SECRET": "j" * 32, "JWT_REFRESH_SECRET": "r" * 32},
            ("MASTER_API_KEY",),
        ),
    ],
)
def test_production_refuses_to_serve_with_default_or_weak_secrets(
    tmp_path: Path, given: dict[str, str], refused: tuple[str, ...]
) -> None:
    result = _serve(tmp_path, **given)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("replyhq: ")
    for name in SECRETS:
        assert (name in lines[0]) == (name in refused), (name, lines[0])
    assert result.stdout == ""
    assert not (tmp_path / "data").exists(), "services were started before the check"


@pytest.mark.usefixtures("no_settings_env")
def test_production_with_explicit_secrets_is_accepted() -> None:
    settings = Settings(
        environment="production",
        master_api_key="m" * 32,
        jwt_secret="j" * 32,
        jwt_refresh_secret="r" * 32,
    )
    assert settings.environment == "production"
    # Development keeps its laptop defaults.
    assert Settings().master_api_key == DEV_MASTER_KEY
