"""/admin/api: the agents' workspace: private notes and staff-only timeline items, labels,
saved replies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response, status

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.errors import BadRequest
from replyhq.mail.service import link
from replyhq.messaging.admin_routes import agent
from replyhq.messaging.service import require_conversation
from replyhq.users.service import end_user_profile as find_end_user
from replyhq.web.bounds import INT4_MAX
from replyhq.web.deps import RuntimeDep
from replyhq.workspace import assignment, labels, profile, replies, timeline
from replyhq.workspace.schemas import (
    AgentLoad,
    AssignmentIn,
    AssignmentOut,
    AvailabilityIn,
    ConversationLabels,
    ItemPage,
    LabelIn,
    LabelOut,
    LabelPatch,
    NoteIn,
    ProfileOut,
    Rendered,
    RenderIn,
    SavedReplyIn,
    SavedReplyOut,
    SavedReplyPatch,
    TimelineItemOut,
)

notes_router = admin_router("/admin/api/conversations", ["conversations"])

MessageReader = Annotated[StaffPrincipal, RequirePermission("messages:read")]
MessageWriter = Annotated[StaffPrincipal, RequirePermission("messages:write")]


@notes_router.post("/{conversation_id}/notes", status_code=status.HTTP_201_CREATED)
async def add_note(
    conversation_id: uuid.UUID,
    body: NoteIn,
    caller: MessageWriter,
    runtime: RuntimeDep,
    response: Response,
) -> TimelineItemOut:
    """Write a private note in the conversation's timeline: the app's staff see it (live:
    `timeline:item` on /admin), the end user never. Mentioned teammates get `note:mention` and
    an e-mail. The same client_msg_id again answers 200 with the stored note."""
    settings = runtime.settings
    base = settings.dashboard_url or link(settings, "/dashboard")
    mention_link = f"{base.rstrip('/')}/inbox/{conversation_id}"
    async with runtime.db.tenant_session(caller.app_id) as session:
        note, created = await timeline.add_note(
            session,
            caller.app_id,
            conversation_id,
            agent(caller),
            body.body,
            body.client_msg_id,
            mentions=body.mentions,
            mention_link=mention_link,
        )
        out = timeline.item_out(note)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@notes_router.get("/{conversation_id}/items")
async def list_items(
    conversation_id: uuid.UUID,
    caller: MessageReader,
    runtime: RuntimeDep,
    after_seq: Annotated[int, Query(ge=0, le=INT4_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> ItemPage:
    """The staff-only part of the timeline (notes; assigned, unassigned and label events),
    placed at or after message `after_seq`, in order. Messages (with the closed and reopened
    events the end user sees too) are at /messages."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await timeline.list_items(
            session, caller.app_id, conversation_id, after_seq=after_seq, limit=limit
        )


# --- labels -------------------------------------------------------------------------------------

labels_router = admin_router("/admin/api/labels", ["labels"])
conversation_labels_router = admin_router("/admin/api/conversations", ["labels"])

Reader = Annotated[StaffPrincipal, RequirePermission("conversations:read")]
Writer = Annotated[StaffPrincipal, RequirePermission("conversations:write")]
Manager = Annotated[StaffPrincipal, RequirePermission("settings:write")]


@labels_router.get("")
async def list_labels(caller: Reader, runtime: RuntimeDep) -> list[LabelOut]:
    """The app's labels, by name."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return [
            LabelOut.model_validate(lb) for lb in await labels.list_labels(session, caller.app_id)
        ]


@labels_router.post("", status_code=status.HTTP_201_CREATED)
async def create_label(body: LabelIn, caller: Manager, runtime: RuntimeDep) -> LabelOut:
    """Create a label (names are unique per app, whatever their case: 409 LABEL_EXISTS)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        label = await labels.create_label(session, caller.app_id, body.name, body.color)
        return LabelOut.model_validate(label)


@labels_router.patch("/{label_id}")
async def update_label(
    label_id: uuid.UUID, body: LabelPatch, caller: Manager, runtime: RuntimeDep
) -> LabelOut:
    """Rename or recolour a label."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        label = await labels.update_label(
            session, caller.app_id, label_id, name=body.name, color=body.color
        )
        return LabelOut.model_validate(label)


@labels_router.delete("/{label_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_label(label_id: uuid.UUID, caller: Manager, runtime: RuntimeDep) -> None:
    """Delete a label; it leaves every conversation it was on."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await labels.delete_label(session, caller.app_id, label_id)


async def _set_label(
    conversation_id: uuid.UUID,
    label_id: uuid.UUID,
    caller: StaffPrincipal,
    runtime: RuntimeDep,
    *,
    on: bool,
) -> ConversationLabels:
    async with runtime.db.tenant_session(caller.app_id) as session:
        now = await labels.set_label(
            session, caller.app_id, conversation_id, label_id, agent(caller), on=on
        )
        return ConversationLabels(
            conversation_id=conversation_id, labels=[LabelOut.model_validate(lb) for lb in now]
        )


@conversation_labels_router.get("/{conversation_id}/labels")
async def conversation_labels(
    conversation_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> ConversationLabels:
    async with runtime.db.tenant_session(caller.app_id) as session:
        await require_conversation(session, caller.app_id, conversation_id)
        now = await labels.conversation_labels(session, caller.app_id, conversation_id)
        return ConversationLabels(
            conversation_id=conversation_id, labels=[LabelOut.model_validate(lb) for lb in now]
        )


@conversation_labels_router.put("/{conversation_id}/labels/{label_id}")
async def add_label(
    conversation_id: uuid.UUID, label_id: uuid.UUID, caller: Writer, runtime: RuntimeDep
) -> ConversationLabels:
    """Put a label on the conversation (again: no change). Agents hear `conversation:labels`;
    the timeline gets a staff-only `label_added` event."""
    return await _set_label(conversation_id, label_id, caller, runtime, on=True)


@conversation_labels_router.delete("/{conversation_id}/labels/{label_id}")
async def remove_label(
    conversation_id: uuid.UUID, label_id: uuid.UUID, caller: Writer, runtime: RuntimeDep
) -> ConversationLabels:
    """Take a label off the conversation (not on it: no change)."""
    return await _set_label(conversation_id, label_id, caller, runtime, on=False)


# --- saved replies ------------------------------------------------------------------------------

replies_router = admin_router("/admin/api/saved-replies", ["saved replies"])


@replies_router.get("")
async def list_replies(caller: MessageWriter, runtime: RuntimeDep) -> list[SavedReplyOut]:
    """The app's saved replies, by shortcut (everyone who may write messages uses them)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        found = await replies.list_replies(session, caller.app_id)
        return [SavedReplyOut.model_validate(r) for r in found]


@replies_router.post("", status_code=status.HTTP_201_CREATED)
async def create_reply(body: SavedReplyIn, caller: Manager, runtime: RuntimeDep) -> SavedReplyOut:
    """Create a saved reply (a shortcut is unique per app: 409 SHORTCUT_TAKEN)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        reply = await replies.create_reply(
            session, caller.app_id, name=body.name, shortcut=body.shortcut, body=body.body
        )
        return SavedReplyOut.model_validate(reply)


@replies_router.patch("/{reply_id}")
async def update_reply(
    reply_id: uuid.UUID, body: SavedReplyPatch, caller: Manager, runtime: RuntimeDep
) -> SavedReplyOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        reply = await replies.update_reply(
            session,
            caller.app_id,
            reply_id,
            name=body.name,
            shortcut=body.shortcut,
            body=body.body,
        )
        return SavedReplyOut.model_validate(reply)


@replies_router.delete("/{reply_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_reply(reply_id: uuid.UUID, caller: Manager, runtime: RuntimeDep) -> None:
    async with runtime.db.tenant_session(caller.app_id) as session:
        await replies.delete_reply(session, caller.app_id, reply_id)


@replies_router.post("/{reply_id}/render")
async def render_reply(
    reply_id: uuid.UUID, body: RenderIn, caller: MessageWriter, runtime: RuntimeDep
) -> Rendered:
    """The saved reply's body for a conversation: {{user.name}}, {{user.email}} (its end user)
    and {{agent.name}} (the caller) filled in. Nothing is sent."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        reply = await replies.require_reply(session, caller.app_id, reply_id)
        conversation = await require_conversation(session, caller.app_id, body.conversation_id)
        person = await find_end_user(session, caller.app_id, conversation.end_user_id)
    values = {
        "user.name": person.name if person else None,
        "user.email": person.email if person else None,
        "agent.name": agent(caller).name,
    }
    return Rendered(body=replies.fill(reply.body, values))


# --- auto-assignment ----------------------------------------------------------------------------

assignment_router = admin_router("/admin/api/assignment", ["assignment"])


@assignment_router.get("")
async def get_assignment(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:read")], runtime: RuntimeDep
) -> AssignmentOut:
    """How new conversations are assigned: `off`, `round_robin` or `least_busy`."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return AssignmentOut.model_validate(await assignment.get_settings(session, caller.app_id))


@assignment_router.put("")
async def put_assignment(body: AssignmentIn, caller: Manager, runtime: RuntimeDep) -> AssignmentOut:
    """Set the mode and the capacity (open conversations per agent)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        found = await assignment.put_settings(
            session, caller.app_id, mode=body.mode, capacity=body.capacity
        )
        return AssignmentOut.model_validate(found)


@assignment_router.get("/agents")
async def agent_loads(caller: Reader, runtime: RuntimeDep) -> list[AgentLoad]:
    """Every active member: available or away, and how many open conversations they hold."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        rows = await assignment.loads(session, caller.app_id)
    return [AgentLoad.model_validate(row) for row in rows]


@assignment_router.put("/availability", status_code=status.HTTP_204_NO_CONTENT)
async def set_availability(body: AvailabilityIn, caller: Reader, runtime: RuntimeDep) -> None:
    """The caller is available for auto-assignment, or away (a staff user; not the secret key)."""
    if caller.staff_id is None:
        raise BadRequest(
            "Availability is a staff user's; the secret key is not one.",
            code="STAFF_ONLY",
            details=[{"field": "available", "reason": "no staff user behind the secret key"}],
        )
    async with runtime.db.tenant_session(caller.app_id) as session:
        await assignment.set_available(session, caller.app_id, caller.staff_id, body.available)


# --- the end user's profile ---------------------------------------------------------------------

profile_router = admin_router("/admin/api/users", ["end users"])


@profile_router.get("/{end_user_id}/profile")
async def end_user_profile(
    end_user_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("users:read")],
    runtime: RuntimeDep,
) -> ProfileOut:
    """The end user's conversations, devices (platform, app version, last seen) and latest
    tracked events, newest first (404 for another app's)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await profile.profile(session, caller.app_id, end_user_id)
