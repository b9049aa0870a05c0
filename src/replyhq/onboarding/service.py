"""The survey and the checklist of an app's onboarding.

A step is done by a real event, never by a click: `reach()` records the first time (in the
transaction of whoever calls it) and tells the app's staff over /admin (`onboarding:step`) once
committed. replyhq.onboarding.live calls it when committed domain events show a step happening;
`state()` also finds steps done before anything recorded them (an app made by the operator, a
process that stopped between a commit and its reaction) from the data itself, so the checklist
never misses a step that happened.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts.models import StaffInvite
from replyhq.errors import Conflict
from replyhq.events import Event, record
from replyhq.messaging.models import Message
from replyhq.onboarding.models import STEPS, OnboardingState
from replyhq.onboarding.schemas import OnboardingOut, StepOut, SurveyIn, SurveyOut
from replyhq.users.models import Device

STEP_EVENT = "onboarding:step"


def _column(step: str) -> Any:
    return getattr(OnboardingState, f"{step}_at")


async def reach(session: AsyncSession, app_id: uuid.UUID, step: str) -> datetime | None:
    """Record that `step` is done, if it was not yet: when it became done (None: it already
    was). The app's staff hear `onboarding:step` once this commits."""
    if step not in STEPS:
        raise ValueError(f"unknown onboarding step {step!r}")
    column = f"{step}_at"
    table = OnboardingState.__table__
    stmt = insert(OnboardingState).values({"app_id": app_id, column: func.now()})
    done_at: datetime | None = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["app_id"],
            set_={column: func.now()},
            where=table.c[column].is_(None),
        ).returning(table.c[column])
    )
    if done_at is not None:
        record(session, step_event(app_id, step, done_at))
    return done_at


def step_event(app_id: uuid.UUID, step: str, done_at: datetime) -> Event:
    data = StepOut(key=step, done=True, done_at=done_at).model_dump(mode="json")
    return Event(STEP_EVENT, app_id, data, agents=True)


async def _row(session: AsyncSession, app_id: uuid.UUID, *, lock: bool = False) -> OnboardingState:
    await session.execute(
        insert(OnboardingState)
        .values(app_id=app_id)
        .on_conflict_do_nothing(index_elements=["app_id"])
    )
    stmt = select(OnboardingState).where(OnboardingState.app_id == app_id)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt.execution_options(populate_existing=True))
    assert row is not None
    return row


def _first(stmt: Any) -> Any:
    return stmt.limit(1).scalar_subquery()


async def _catch_up(session: AsyncSession, row: OnboardingState) -> None:
    """Steps the data shows done that no reaction recorded: one statement, one indexed probe
    per missing step (when it happened is the matching row's time, not necessarily the first)."""
    app_id = row.app_id
    probes = {
        "sdk_installed": select(Device.created_at).where(Device.app_id == app_id),
        "identity_verified": select(Device.last_seen_at).where(
            Device.app_id == app_id, Device.verified.is_(true())
        ),
        "first_message": select(Message.created_at).where(
            Message.app_id == app_id, Message.sender == "user"
        ),
        "first_reply": select(Message.created_at).where(
            Message.app_id == app_id, Message.sender == "agent"
        ),
        "teammate_invited": select(StaffInvite.created_at).where(StaffInvite.app_id == app_id),
    }
    missing = [step for step in STEPS if getattr(row, f"{step}_at") is None]
    if not missing:
        return
    found = (
        await session.execute(select(*(_first(probes[step]).label(step) for step in missing)))
    ).one()
    values = {f"{step}_at": at for step, at in zip(missing, found, strict=True) if at is not None}
    if values:
        await session.execute(
            update(OnboardingState).where(OnboardingState.app_id == app_id).values(values)
        )
        for key, at in values.items():
            setattr(row, key, at)


async def state(session: AsyncSession, app_id: uuid.UUID) -> OnboardingState:
    row = await _row(session, app_id)
    if row.dismissed_at is None:
        await _catch_up(session, row)
    return row


def out(row: OnboardingState) -> OnboardingOut:
    steps = [
        StepOut(
            key=step,
            done=getattr(row, f"{step}_at") is not None,
            done_at=getattr(row, f"{step}_at"),
        )
        for step in STEPS
    ]
    return OnboardingOut(
        survey=SurveyOut(
            platform=row.platform,
            use_case=row.use_case,
            answered_at=row.survey_answered_at,
            skipped_at=row.survey_skipped_at,
        ),
        steps=steps,
        complete=all(s.done for s in steps),
        dismissed_at=row.dismissed_at,
    )


async def answer_survey(
    session: AsyncSession, app_id: uuid.UUID, answers: SurveyIn
) -> OnboardingState:
    """Store (or change) the survey's answers; `skipped` records that it was put off."""
    row = await _row(session, app_id, lock=True)
    if answers.skipped:
        row.survey_skipped_at = func.now()
    else:
        changes = answers.model_dump(exclude_unset=True, exclude={"skipped"})
        for field, value in changes.items():
            setattr(row, field, value)
        row.survey_answered_at = func.now()
    await session.flush()
    return await state(session, app_id)


async def dismiss(session: AsyncSession, app_id: uuid.UUID) -> OnboardingState:
    """Hide the checklist; only once every step is done (409 `ONBOARDING_INCOMPLETE`)."""
    row = await state(session, app_id)
    if not all(getattr(row, f"{step}_at") is not None for step in STEPS):
        raise Conflict(
            "The checklist can be dismissed once every step is done.",
            code="ONBOARDING_INCOMPLETE",
        )
    if row.dismissed_at is None:
        row.dismissed_at = func.now()
        await session.flush()
        await session.refresh(row)
    return row
