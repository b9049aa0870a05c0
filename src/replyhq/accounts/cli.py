"""`replyhq admins create`, and the demo owner login that `make dev` prints.

Kept light at import time: `replyhq.cli` imports this module to register the command.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import secrets
import sys
import uuid
from pathlib import Path
from typing import Any

from replyhq.settings import Settings

DEMO_OWNER_EMAIL = "demo@replyhq.local"


def add_commands(commands: Any) -> None:
    """Register `admins create` on the top-level sub-parsers of `replyhq`."""
    admins = commands.add_parser("admins", help="manage staff users").add_subparsers(
        dest="admins_command", required=True
    )
    create = admins.add_parser(
        "create", help="add a staff user to an app (password from --password or stdin)"
    )
    create.add_argument("--app", required=True, dest="app_id", help="the app's id")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=["OWNER", "ADMIN", "AGENT"])
    create.add_argument("--name")
    create.add_argument("--password", help="otherwise read from standard input")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_admins_create)


def _read_password(given: str | None) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_admins_create(args: argparse.Namespace) -> None:
    from pydantic import TypeAdapter, ValidationError

    from replyhq.accounts import service
    from replyhq.accounts.permissions import Role
    from replyhq.accounts.schemas import Email, Name, NewPassword
    from replyhq.apps import service as apps
    from replyhq.cli import CliError, _parse_uuid, _with_apps
    from replyhq.errors import AppError, NotFound

    app_id = _parse_uuid(args.app_id)
    try:
        email = TypeAdapter(Email).validate_python(args.email)
        password = TypeAdapter(NewPassword).validate_python(_read_password(args.password))
        name = TypeAdapter(Name).validate_python(args.name) if args.name else None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CliError(f"invalid input: {error['msg']}") from None

    async def create(settings: Settings, runtime: Any) -> dict[str, str]:
        password_hash = await service.hash_password_async(password, settings.bcrypt_rounds)
        async with runtime.db.tenant_session(app_id) as session:
            try:
                await apps.get_app(session, app_id)
            except NotFound:
                raise CliError(f"no such app: {app_id}") from None
            try:
                staff = await service.create_staff(
                    session,
                    app_id,
                    email=email,
                    password_hash=password_hash,
                    role=Role(args.role),
                    name=name,
                )
            except AppError as exc:
                raise CliError(exc.message) from None
        return {
            "id": str(staff.id),
            "app_id": str(app_id),
            "email": staff.email,
            "role": staff.role,
        }

    created = _with_apps(args, create)
    if args.json:
        print(json.dumps(created))
    else:
        print(
            f"staff user {created['id']} ({created['email']}, {created['role']}) "
            f"added to app {created['app_id']}"
        )


async def ensure_demo_owner(settings: Settings, runtime: Any, app_id: str) -> dict[str, str]:
    """An OWNER login for the demo app, its password kept in DATA_DIR's demo file (mode 0600)
    beside the app's keys. A lost or changed password is replaced by a new one."""
    from sqlalchemy import select

    from replyhq.accounts import service
    from replyhq.accounts.models import StaffUser
    from replyhq.accounts.permissions import Role

    path = Path(settings.data_dir) / "demo-app.json"
    demo: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    known = demo.get("owner_password")
    tenant = uuid.UUID(app_id)
    async with runtime.db.tenant_session(tenant) as session:
        staff = await session.scalar(
            select(StaffUser)
            .where(StaffUser.app_id == tenant, StaffUser.email == DEMO_OWNER_EMAIL)
            .with_for_update()
        )
        if (
            staff is not None
            and staff.active
            and known is not None
            and await asyncio.to_thread(
                service.check_password, known, staff.password_hash, settings.bcrypt_rounds
            )
        ):
            return {"owner_email": DEMO_OWNER_EMAIL, "owner_password": known}
        password = secrets.token_urlsafe(12)
        password_hash = await service.hash_password_async(password, settings.bcrypt_rounds)
        if staff is None:
            await service.create_staff(
                session,
                tenant,
                email=DEMO_OWNER_EMAIL,
                password_hash=password_hash,
                role=Role.OWNER,
                name="Demo Owner",
            )
        else:
            staff.password_hash = password_hash
            staff.active = True
            staff.role = Role.OWNER.value
            staff.token_version += 1
    login = {"owner_email": DEMO_OWNER_EMAIL, "owner_password": password}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**demo, **login}, indent=2))
    path.chmod(0o600)
    return login
