"""SQL pieces of the workspace that other domains' queries embed (the inbox's label filter and
label ids), so those queries stay one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, Uuid, exists, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from replyhq.workspace.models import ConversationLabel


def labelled(conversation_id: Any, label_id: Any) -> ColumnElement[bool]:
    """The conversation has the label (by the label table's primary key)."""
    return exists().where(
        ConversationLabel.conversation_id == conversation_id,
        ConversationLabel.label_id == label_id,
    )


def label_ids(conversation_id: Any) -> ColumnElement[Any]:
    """The conversation's label ids, as an array (empty, not NULL, when it has none)."""
    ids = (
        select(func.array_agg(ConversationLabel.label_id))
        .where(ConversationLabel.conversation_id == conversation_id)
        .scalar_subquery()
    )
    return func.coalesce(ids, literal_column("'{}'::uuid[]", ARRAY(Uuid)))
