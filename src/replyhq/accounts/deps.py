"""HTTP authorisation for the dashboard and integrations.

`RequirePermission("conversations:read")` is what every /admin/api route declares:
`caller: Annotated[StaffPrincipal, RequirePermission("...")]`. It authenticates the caller (a
staff access token as `Authorization: Bearer`, or the app's secret key as `X-App-Id` +
`X-Api-Key`), then checks the permission against the role table. Routers made by
`admin_router()` also write each route's permission into the OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from replyhq.accounts.permissions import INTEGRATION_ROLE, PERMISSIONS, StaffPrincipal, roles_with
from replyhq.accounts.service import verify_access_token
from replyhq.errors import Unauthorized
from replyhq.web.deps import RuntimeDep, client_address, verify_app_key

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    description="A staff access token from /admin/login.",
)
_app_id = APIKeyHeader(
    name="X-App-Id", auto_error=False, scheme_name="AppId", description="The app's id."
)
_api_key = APIKeyHeader(
    name="X-Api-Key",
    auto_error=False,
    scheme_name="SecretKey",
    description="The app's secret key (never the SDK key); sent together with X-App-Id.",
)


async def staff_token(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> StaffPrincipal:
    """A signed-in staff user (bearer access token only)."""
    if credentials is None:
        raise Unauthorized("Send Authorization: Bearer <access token>.", code="AUTH_REQUIRED")
    return await verify_access_token(runtime, credentials.credentials)


async def admin_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_app_id: Annotated[str | None, Depends(_app_id)],
    x_api_key: Annotated[str | None, Depends(_api_key)],
) -> StaffPrincipal:
    """A staff user, or the app's own backend with its secret key (acting as an ADMIN)."""
    if credentials is not None:
        return await verify_access_token(runtime, credentials.credentials)
    if x_app_id or x_api_key:
        app_id = await verify_app_key(
            runtime, client_address(request), x_app_id, x_api_key, "secret"
        )
        return StaffPrincipal.integration(app_id)
    raise Unauthorized(
        "Send Authorization: Bearer <access token>, or X-App-Id and X-Api-Key with the "
        "app's secret key.",
        code="AUTH_REQUIRED",
    )


# A signed-in staff user only (no secret key), for routes outside /admin/api.
StaffUser = Annotated[StaffPrincipal, Depends(staff_token)]


class PermissionCheck:
    """The dependency behind RequirePermission; routes are inspected for it (tests, OpenAPI)."""

    def __init__(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        self.permission = permission

    async def __call__(
        self, principal: Annotated[StaffPrincipal, Depends(admin_principal)]
    ) -> StaffPrincipal:
        principal.require(self.permission)
        return principal

    def __repr__(self) -> str:
        return f"RequirePermission({self.permission!r})"


def RequirePermission(permission: str) -> Any:
    return Depends(PermissionCheck(permission))


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def required_permissions(route: APIRoute) -> list[str]:
    """The permissions a route's dependencies demand (empty: the route checks none)."""
    return [c.permission for c in _calls(route.dependant) if isinstance(c, PermissionCheck)]


class AdminRoute(APIRoute):
    """States the route's required permission in its OpenAPI description."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        required = required_permissions(self)
        if required:
            lines = [_permission_note(p) for p in required]
            self.description = "\n\n".join(filter(None, [self.description, *lines]))
            self.openapi_extra = {
                **(self.openapi_extra or {}),
                "x-required-permission": required,
            }


def _permission_note(permission: str) -> str:
    roles = roles_with(permission)
    key = "also" if INTEGRATION_ROLE in roles else "not"
    return (
        f"**Requires** `{permission}`: roles {', '.join(r.value for r in roles)}; "
        f"{key} the app's secret key."
    )


def admin_router(prefix: str, tags: list[str]) -> APIRouter:
    return APIRouter(prefix=prefix, tags=list(tags), route_class=AdminRoute)
