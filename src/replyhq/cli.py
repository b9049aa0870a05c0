"""`replyhq`: serve, migrate and manage apps. Exit 0 on success; otherwise one line on stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replyhq import embedded
from replyhq.accounts.cli import add_commands as add_admin_commands
from replyhq.accounts.cli import ensure_demo_owner
from replyhq.jobs.cli import add_commands as add_job_commands
from replyhq.jobs.cli import prepare_serve
from replyhq.settings import Settings, get_settings


class CliError(Exception):
    """A failure explained in one line to the operator."""


@contextlib.contextmanager
def services(settings: Settings, *, redis: bool = True) -> Iterator[tuple[str, str, bool]]:
    """(database_url, redis_url, embedded_postgres): the configured servers, or embedded ones
    under DATA_DIR for whichever is not configured. Exported to the environment for workers.

    `redis=False` for commands that never use Redis: they neither start nor attach to it, and
    get "" as its URL. An embedded server already running (`make dev`) is shared, never stopped
    by a command that leaves while it is still in use (embedded.py)."""
    started = embedded.start(
        settings.data_dir,
        need_postgres=not settings.database_url,
        need_redis=redis and not settings.redis_url,
    )
    database_url = settings.database_url or started.database_url
    redis_url = (settings.redis_url or started.redis_url) if redis else ""
    os.environ["DATABASE_URL"] = database_url
    if redis:
        os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    try:
        yield database_url, redis_url, not settings.database_url
    finally:
        started.stop()


@dataclass
class DatabaseOnly:
    """What a command that needs no Redis runs against: the database alone."""

    db: Any

    async def close(self) -> None:
        await self.db.dispose()


def _run(
    coro_factory: Callable[[Settings, Any], Coroutine[Any, Any, Any]], *, redis: bool = True
) -> Any:
    """Run an async command against a Runtime built from the resolved settings (or against
    `DatabaseOnly` when the command needs no Redis)."""
    from replyhq.db import Database
    from replyhq.runtime import Runtime

    async def main() -> Any:
        settings = get_settings()
        assert settings.database_url
        runtime: Any
        if redis:
            assert settings.redis_url
            runtime = Runtime.build(settings, settings.database_url, settings.redis_url)
        else:
            runtime = DatabaseOnly(Database.from_settings(settings, settings.database_url))
        try:
            return await coro_factory(settings, runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())


def _migrate(database_url: str, *, warn: bool = True) -> None:
    """`warn`: say on stderr when autovacuum is off (`serve` logs it as JSON once it runs)."""
    from replyhq.db.migrate import AUTOVACUUM_OFF, autovacuum_is_on_at, upgrade

    upgrade(database_url, get_settings())
    if warn and not autovacuum_is_on_at(database_url):
        print(f"replyhq: warning: {AUTOVACUUM_OFF}", file=sys.stderr)


# --- serve / migrate -----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from replyhq.mail import dev as dev_mail
    from replyhq.realtime.websocket import WEBSOCKET_OPTIONS
    from replyhq.web.protocol import http_options

    _check_port_free(args.host, args.port)  # before any server starts or any key is printed
    settings = get_settings()
    with (
        services(settings) as (database_url, _, embedded_postgres),
        contextlib.ExitStack() as stack,
    ):
        prepare_serve(embedded_postgres, args.workers)  # before anything imports metrics
        sink = dev_mail.prepare(get_settings(), args.host, args.port, print_mails=args.demo)
        fake_stripe = None
        if args.demo:  # billing against the local fake Stripe, unless a real key is set
            from replyhq.billing import dev as dev_billing

            fake_stripe = dev_billing.prepare(get_settings(), os.environ["PUBLIC_URL"])
        get_settings.cache_clear()
        if sink is not None:
            stack.callback(sink.stop)
        if fake_stripe is not None:
            stack.callback(fake_stripe.stop)
        if not args.no_migrate:
            _migrate(database_url, warn=False)
        settings = get_settings()
        if args.demo:
            os.environ["REPLYHQ_DEMO"] = "1"  # serves /demo (development only; web/static.py)
            demo = _run(lambda s, r: ensure_demo_app(s, r))
            demo.update(_run(lambda s, r: ensure_demo_owner(s, r, demo["id"])))
            _print_banner(args.host, args.port, settings, demo, mail_sink=sink is not None)
            if fake_stripe is not None:
                print(
                    f"  billing      fake Stripe at {fake_stripe.url} (docs/billing.md)",
                    flush=True,
                )
        proxies = settings.proxies
        uvicorn.run(
            "replyhq.app:create_asgi",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or None,
            # Named rather than "auto", which falls back to asyncio and h11 without a word when
            # they are missing, at a clearly higher CPU cost per request (both are pinned). The
            # HTTP protocol is httptools' with a limit on the size of headers.
            loop="uvloop",
            **http_options(settings.max_header_bytes),
            access_log=False,  # ours: one JSON line per request (observability/http.py)
            log_config=None,  # uvicorn's loggers go through our JSON handler
            log_level=settings.log_level.lower(),
            **WEBSOCKET_OPTIONS,
        )


def _check_port_free(host: str, port: int) -> None:
    """Refuse in one line when HOST:PORT cannot be listened on, as uvicorn would bind it."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    for family, kind, proto, _, address in addresses[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
                raise CliError(
                    f"cannot listen on {host}:{port}: {reason} (stop what runs there, "
                    "or pass --port)"
                ) from None


def cmd_migrate(args: argparse.Namespace) -> None:
    with services(get_settings(), redis=False) as (database_url, _, _):
        _migrate(database_url)
    print("migrations applied")


# --- apps ------------------------------------------------------------------------------------


def _app_keys_json(app: Any, keys: Any) -> dict[str, str]:
    return {
        "id": str(app.id),
        "name": app.name,
        "sdk_key": keys.sdk_key,
        "secret_key": keys.secret_key,
        "identity_secret": keys.identity_secret,
        "created_at": app.created_at.isoformat(),
    }


def _print_keys(data: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
        return
    for key in ("id", "name", "sdk_key", "secret_key", "identity_secret"):
        print(f"{key:16} {data[key]}")
    print("Keys are shown only now; store them safely.")


def _with_apps(
    args: argparse.Namespace,
    command: Callable[[Settings, Any], Coroutine[Any, Any, Any]],
    *,
    redis: bool = False,
) -> Any:
    """Run `command` on the database (migrated first when embedded); with `redis`, on a full
    Runtime, for commands whose effects other processes must hear of (revocations)."""
    with services(get_settings(), redis=redis) as (database_url, _, embedded_postgres):
        if embedded_postgres:
            _migrate(database_url)
        return _run(command, redis=redis)


def _app_name(raw: str | None) -> str | None:
    """The name as the API would accept it (1 to 200 characters), else a one-line refusal."""
    from pydantic import ValidationError

    from replyhq.apps.schemas import AppUpdate

    try:
        return AppUpdate(name=raw).name
    except ValidationError as exc:
        raise CliError(f"invalid app name: {exc.errors()[0]['msg']}") from None


def cmd_apps_create(args: argparse.Namespace) -> None:
    from replyhq.apps import service

    if _app_name(args.name) is None:
        raise CliError("an app needs a name")

    async def create(settings: Settings, runtime: Any) -> dict[str, str]:
        async with runtime.db.system_session() as session:
            app, keys = await service.create_app(session, args.name, rounds=settings.bcrypt_rounds)
        return _app_keys_json(app, keys)

    _print_keys(_with_apps(args, create), args.json)


def cmd_apps_list(args: argparse.Namespace) -> None:
    from replyhq.apps import service

    async def list_all(_: Settings, runtime: Any) -> list[dict[str, str]]:
        async with runtime.db.system_session() as session:
            apps = await service.list_apps(session)
        return [
            {"id": str(a.id), "name": a.name, "created_at": a.created_at.isoformat()} for a in apps
        ]

    apps = _with_apps(args, list_all)
    if args.json:
        print(json.dumps(apps))
        return
    for app in apps:
        print(f"{app['id']}  {app['created_at']}  {app['name']}")


def cmd_apps_rotate(args: argparse.Namespace) -> None:
    from replyhq.apps import service

    app_id = _parse_uuid(args.app_id)

    async def rotate(settings: Settings, runtime: Any) -> dict[str, str]:
        async with runtime.db.tenant_session(app_id) as session:
            app, keys = await service.rotate_keys(
                session,
                app_id,
                rounds=settings.bcrypt_rounds,
                verifier=runtime.keys,
                data_dir=settings.data_dir,
            )
        return _app_keys_json(app, keys)

    _print_keys(_with_apps(args, rotate, redis=True), args.json)


def cmd_apps_update(args: argparse.Namespace) -> None:
    from replyhq.apps import service
    from replyhq.apps.schemas import AppUpdate

    app_id = _parse_uuid(args.app_id)
    changes = AppUpdate(
        name=_app_name(args.name),
        identity_verification_required=(
            None if args.require_identity is None else args.require_identity == "on"
        ),
    )

    async def update(_: Settings, runtime: Any) -> None:
        async with runtime.db.tenant_session(app_id) as session:
            await service.update_app(session, app_id, changes)

    _with_apps(args, update, redis=True)  # identity changes may cut live sockets
    print("app updated")


def _parse_uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise CliError(f"not an app id: {raw!r}") from None


# --- demo ------------------------------------------------------------------------------------


async def ensure_demo_app(settings: Settings, runtime: Any) -> dict[str, str]:
    """The demo app of `make dev`: created once, its current keys kept in DATA_DIR for this laptop
    (apps/demo.py). Keys in the file that no longer open the app (rotated where the file could not
    follow) are replaced by new ones: the demo must embed a key that works."""
    from replyhq.apps import demo as demo_file
    from replyhq.apps import service
    from replyhq.errors import NotFound

    demo: dict[str, str] | None = demo_file.load(settings.data_dir)
    if demo is not None and "id" in demo:
        app_id = uuid.UUID(demo["id"])
        with contextlib.suppress(NotFound):
            async with runtime.db.tenant_session(app_id) as session:
                app = await service.get_app(session, app_id)
            if await asyncio.to_thread(_keys_open, demo, app):
                return demo
            async with runtime.db.tenant_session(app_id) as session:
                await service.rotate_keys(
                    session,
                    app_id,
                    rounds=settings.bcrypt_rounds,
                    verifier=runtime.keys,
                    data_dir=settings.data_dir,
                )
            print("The demo app's keys had been rotated elsewhere: it has new ones.", flush=True)
            current: dict[str, str] | None = demo_file.load(settings.data_dir)
            assert current is not None
            return current
    async with runtime.db.system_session() as session:
        app, keys = await service.create_app(session, "Demo app", rounds=settings.bcrypt_rounds)
    created = _app_keys_json(app, keys)
    demo_file.save(settings.data_dir, created)
    return created


def _keys_open(demo: dict[str, str], app: Any) -> bool:
    """Whether the demo file's keys are the app's current ones."""
    import bcrypt

    def matches(key: str | None, hashed: str) -> bool:
        return bool(key) and bcrypt.checkpw(str(key).encode(), hashed.encode())

    return (
        demo.get("identity_secret") == app.identity_secret
        and matches(demo.get("sdk_key"), app.sdk_key_hash)
        and matches(demo.get("secret_key"), app.secret_key_hash)
    )


def _print_banner(
    host: str, port: int, settings: Settings, demo: dict[str, str], mail_sink: bool
) -> None:
    base = f"http://{host}:{port}"
    lines = [
        f"ReplyHQ is starting at {base}",
        f"  API docs     {base}/docs",
        f"  dashboard    {base}/dashboard",
        f"  demo page    {base}/demo  (the messenger, as an end user)",
        f"  health       {base}/readyz",
        f"  master key   {settings.master_api_key}  (X-Master-Key for /setup)",
        f"  demo app id  {demo['id']}",
        f"  SDK key      {demo['sdk_key']}",
        f"  secret key   {demo['secret_key']}",
        f"  identity     {demo['identity_secret']}  (signs user_hash on your server)",
        f"  owner login  {demo.get('owner_email')}  password {demo.get('owner_password')}",
        f"  data         {Path(settings.data_dir).resolve()}",
    ]
    if mail_sink:
        lines.append(f"  mailbox      {base}/dev/mailbox  (every e-mail sent, kept here)")
    print("\n".join(lines), flush=True)


# --- entry point -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replyhq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve HTTP and Socket.IO")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true")
    serve.add_argument("--demo", action="store_true", help="ensure a demo app and print its keys")
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending migrations and exit")
    migrate.set_defaults(func=cmd_migrate)

    add_job_commands(commands)  # worker, jobs failed|retry|stats
    add_admin_commands(commands)  # admins create

    apps = commands.add_parser("apps", help="manage apps (tenants)").add_subparsers(
        dest="apps_command", required=True
    )
    create = apps.add_parser("create", help="create an app and print its keys once")
    create.add_argument("name")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_apps_create)
    listing = apps.add_parser("list", help="list apps (no keys)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_apps_list)
    rotate = apps.add_parser("rotate-keys", help="replace an app's keys; the old stop at once")
    rotate.add_argument("app_id")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_apps_rotate)
    update = apps.add_parser("update", help="rename an app or set identity verification")
    update.add_argument("app_id")
    update.add_argument("--name")
    update.add_argument("--require-identity", choices=["on", "off"])
    update.set_defaults(func=cmd_apps_update)
    return parser


def _one_line(exc: Exception) -> str:
    """The reason in one line; for invalid settings, each variable and what is wrong with it."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        reasons = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            reason = str(error["msg"]).removeprefix("Value error, ")
            reasons.append(f"{name}: {reason}" if name else reason)
        return "invalid settings: " + "; ".join(reasons)
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"replyhq: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
