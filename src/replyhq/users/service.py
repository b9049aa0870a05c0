"""End users and their devices: who is on the other side of the SDK."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.apps.models import App
from replyhq.attachments import service as attachments
from replyhq.errors import BadRequest, DeviceUnknown, DeviceUnverified, Unauthorized
from replyhq.events import Event, Revoke, record
from replyhq.messaging import service as messaging
from replyhq.users.models import Device, EndUser
from replyhq.users.schemas import MAX_ATTRIBUTES, IdentifyIn


def user_hash(identity_secret: str, user_id: str) -> str:
    """What the customer's server computes to vouch for `user_id`."""
    return hmac.new(identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def may_speak(device_verified: bool, user_verified: bool, required: bool) -> bool:
    """Whether a device may act for its end user: always when its identity was proven by a
    user_hash; without proof only for a person never verified, in an app that does not require
    verification. (messaging/statements.py's device sender states the same rule in SQL.)"""
    return device_verified or not (user_verified or required)


async def identify(
    session: AsyncSession, app_id: uuid.UUID, device_id: str, data: IdentifyIn
) -> EndUser:
    """Bind the device to an end user (identified or anonymous) and record the device's details."""
    app = (
        await session.execute(
            select(App.identity_secret, App.identity_verification_required).where(App.id == app_id)
        )
    ).one()
    found = (
        await session.execute(
            select(EndUser, Device.verified)
            .join(Device, (Device.end_user_id == EndUser.id) & (Device.app_id == EndUser.app_id))
            .where(Device.app_id == app_id, Device.device_id == device_id)
        )
    ).first()
    current, was_proven = (found[0], found[1]) if found is not None else (None, False)
    verified = newly_verified = False
    if data.user_id is not None:
        verified = _check_user_hash(
            app.identity_secret, data, required=app.identity_verification_required
        )
        user, newly_verified = await _upsert_identified(session, app_id, data, verified)
    elif app.identity_verification_required:
        raise Unauthorized(
            "This app accepts only verified users: send user_id and user_hash.",
            code="IDENTITY_REQUIRED",
        )
    elif current is not None and current.anonymous:
        user = current
        _apply_profile(user, data)
    else:
        user = EndUser(app_id=app_id, attributes={})
        _apply_profile(user, data)
        session.add(user)
    _check_attribute_count(user)
    await session.flush()

    device_values: dict[str, Any] = {
        "end_user_id": user.id,
        "platform": data.platform,
        "app_version": data.app_version,
        "locale": data.locale,
        "timezone": data.timezone,
        "verified": verified,
        "last_seen_at": func.now(),
    }
    if data.push_token is not None:
        device_values.update(push_values(data))
        await release_push_token(session, app_id, device_id, data.push_token)
    elif current is not None and current.id != user.id:
        # The previous person's notifications must not reach whoever uses the device now; the
        # SDK registers the token again for them.
        device_values.update(PUSH_CLEARED)
    await session.execute(
        insert(Device)
        .values(app_id=app_id, device_id=device_id, **device_values)
        .on_conflict_do_update(index_elements=["app_id", "device_id"], set_=device_values)
    )
    if current is not None and current.id != user.id:
        # Live sockets of this device belong to the previous person: end them.
        record(session, Revoke(app_id, device_id=device_id))
        if current.anonymous:
            await _adopt_anonymous(session, app_id, anonymous=current, into=user)
    elif was_proven and not verified:
        # Its sockets were admitted on the proof this identify no longer gives.
        record(session, Revoke(app_id, device_id=device_id))
    if newly_verified:
        # Devices that claimed this person without proof (before they were verified) may no
        # longer speak for them (may_speak): their live sockets end too.
        record(session, Revoke(app_id, end_user_id=user.id, unproven_devices=True))
    # Heard by no socket as such: the onboarding checklist and the test console react to it.
    record(session, Event(IDENTIFIED, app_id, _identified(device_id, data, user, verified)))
    await session.refresh(user)
    return user


IDENTIFIED = "device:identified"


def _identified(device_id: str, data: IdentifyIn, user: EndUser, verified: bool) -> dict[str, Any]:
    """What an identify told, without its secrets (user_hash, push token)."""
    return {
        "device_id": device_id,
        "user_id": data.user_id,
        "anonymous": data.user_id is None,
        "verified": verified,
        "platform": data.platform,
        "app_version": data.app_version,
        "name": data.name,
        "has_push_token": data.push_token is not None,
    }


PUSH_CLEARED: dict[str, Any] = {
    "push_provider": None,
    "push_token": None,
    "push_keys": None,
    "push_token_updated_at": None,
}


def push_values(data: IdentifyIn) -> dict[str, Any]:
    provider = data.push_provider or ("apns" if data.platform in ("ios", "macos") else "fcm")
    return {
        "push_provider": provider,
        "push_token": data.push_token,
        "push_keys": None,
        "push_token_updated_at": func.now(),
    }


async def release_push_token(
    session: AsyncSession, app_id: uuid.UUID, device_id: str, token: str
) -> None:
    """A token now registered on `device_id` leaves any other device of the app (a reinstall
    under a new device id): nobody's phone is pushed to twice, nor for someone else."""
    await session.execute(
        update(Device)
        .where(Device.app_id == app_id, Device.push_token == token, Device.device_id != device_id)
        .values(**PUSH_CLEARED)
    )


def _check_user_hash(secret: str, data: IdentifyIn, *, required: bool) -> bool:
    assert data.user_id is not None
    if data.user_hash is None and not required:
        return False
    expected = user_hash(secret, data.user_id)
    if data.user_hash is None or not hmac.compare_digest(expected, data.user_hash.lower()):
        raise Unauthorized("user_hash does not match user_id.", code="INVALID_USER_HASH")
    return True


async def _upsert_identified(
    session: AsyncSession, app_id: uuid.UUID, data: IdentifyIn, verified: bool
) -> tuple[EndUser, bool]:
    """The person named by `user_id`, created if new, with this identify's profile; and whether
    this identify is the one that verified them. A person once verified is only ever spoken for
    with proof: an unverified claim of them is refused, whatever the app requires."""
    user = await session.scalar(
        select(EndUser)
        .where(EndUser.app_id == app_id, EndUser.external_id == data.user_id)
        .with_for_update()
    )
    if user is None:
        await session.execute(
            insert(EndUser)
            .values(app_id=app_id, external_id=data.user_id, attributes={})
            .on_conflict_do_nothing(index_elements=["app_id", "external_id"])
        )
        user = await session.scalar(
            select(EndUser)
            .where(EndUser.app_id == app_id, EndUser.external_id == data.user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert user is not None
    if user.verified and not verified:
        raise Unauthorized(
            "This user_id belongs to a verified user: send user_hash with it.",
            code="USER_HASH_REQUIRED",
        )
    newly_verified = verified and not user.verified
    _apply_profile(user, data)
    user.verified = user.verified or verified
    return user, newly_verified


def _apply_profile(user: EndUser, data: IdentifyIn) -> None:
    if data.name is not None:
        user.name = data.name
    if data.email is not None:
        user.email = data.email
    if data.attributes:
        merged: dict[str, Any] = {**(user.attributes or {}), **data.attributes}
        user.attributes = merged
    user.updated_at = func.now()


def _check_attribute_count(user: EndUser) -> None:
    if len(user.attributes or {}) > MAX_ATTRIBUTES:
        raise BadRequest(
            f"An end user has at most {MAX_ATTRIBUTES} attributes.",
            code="VALIDATION_ERROR",
            details=[{"field": "attributes", "reason": f"more than {MAX_ATTRIBUTES} keys"}],
        )


async def _adopt_anonymous(
    session: AsyncSession, app_id: uuid.UUID, *, anonymous: EndUser, into: EndUser
) -> None:
    """A visitor who signs in keeps the conversations they had as a visitor on this device, and
    their uploads not sent yet."""
    await messaging.move_conversations(session, app_id, from_user=anonymous.id, to_user=into.id)
    await attachments.adopt_uploads(session, app_id, from_user=anonymous.id, to_user=into.id)
    await session.execute(
        delete(EndUser).where(EndUser.app_id == app_id, EndUser.id == anonymous.id)
    )


async def void_proofs(session: AsyncSession, app_id: uuid.UUID) -> None:
    """The identity secret changed: proofs made with the old one (perhaps leaked, which is why
    secrets are rotated) no longer count, so each device must identify again with a new hash."""
    await session.execute(
        update(Device).where(Device.app_id == app_id, Device.verified).values(verified=False)
    )


async def device_user(
    session: AsyncSession, app_id: uuid.UUID, device_id: str
) -> tuple[uuid.UUID, str | None]:
    """(id, name) of the end user currently behind `device_id`; 401 until it has identified, and
    while it may not speak for them (may_speak)."""
    row = (
        await session.execute(
            select(
                EndUser.id,
                EndUser.name,
                EndUser.verified,
                Device.verified.label("device_verified"),
                App.identity_verification_required,
            )
            .join(Device, (Device.end_user_id == EndUser.id) & (Device.app_id == EndUser.app_id))
            .join(App, App.id == EndUser.app_id)
            .where(Device.app_id == app_id, Device.device_id == device_id)
        )
    ).first()
    if row is None:
        raise DeviceUnknown()
    if not may_speak(row.device_verified, row.verified, row.identity_verification_required):
        raise DeviceUnverified()
    return row.id, row.name


async def socket_user(
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: str,
    user_id: str | None,
    user_hash_given: str | None,
) -> tuple[uuid.UUID, str | None, bool]:
    """(id, name, proven) of the end user a connecting socket speaks for, `proven` when the
    device identified with a user_hash. The device must have identified and may speak for them
    (may_speak); a `user_id` in the handshake must be the device's person, proven by `user_hash`
    when given or when the app requires verification."""
    row = (
        await session.execute(
            select(
                EndUser.id,
                EndUser.name,
                EndUser.external_id,
                EndUser.verified,
                Device.verified.label("device_verified"),
                App.identity_secret,
                App.identity_verification_required,
            )
            .join(Device, (Device.end_user_id == EndUser.id) & (Device.app_id == EndUser.app_id))
            .join(App, App.id == EndUser.app_id)
            .where(Device.app_id == app_id, Device.device_id == device_id)
        )
    ).first()
    if row is None:
        raise DeviceUnknown()
    required = row.identity_verification_required
    if required and user_id is None:
        raise Unauthorized("This app accepts only verified users.", code="IDENTITY_REQUIRED")
    if user_id is not None:
        if user_id != row.external_id:
            raise Unauthorized("user_id is not this device's user.", code="INVALID_USER_HASH")
        if user_hash_given is not None or required:
            expected = user_hash(row.identity_secret, user_id)
            if user_hash_given is None or not hmac.compare_digest(
                expected, user_hash_given.lower()
            ):
                raise Unauthorized("user_hash does not match user_id.", code="INVALID_USER_HASH")
    if not may_speak(row.device_verified, row.verified, required):
        raise DeviceUnverified()
    return row.id, row.name, row.device_verified


async def end_user_profile(
    session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID
) -> EndUser | None:
    """An end user of the app, for staff (None if not the app's)."""
    user: EndUser | None = await session.scalar(
        select(EndUser).where(EndUser.app_id == app_id, EndUser.id == end_user_id)
    )
    return user
