// The agents' inbox as a pure value: conversations ordered by last activity (newest first),
// kept current by live events without a reload.
import type { ConversationEvent, InboxConversation, Message } from "../api/types";

export type InboxFilter = "open" | "closed" | "mine" | "unassigned";

export function byActivity(a: InboxConversation, b: InboxConversation): number {
  const order = Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at);
  return order !== 0 ? order : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export function sortInbox(items: readonly InboxConversation[]): InboxConversation[] {
  return [...items].sort(byActivity);
}

/** Whether a conversation belongs in the list shown for `filter` (for `me`: the staff id). */
export function matches(c: Pick<InboxConversation, "status" | "assignee_id">, filter: InboxFilter, me: string | null): boolean {
  switch (filter) {
    case "open":
      return c.status === "open";
    case "closed":
      return c.status === "closed";
    case "mine": // what is still mine to answer: closed ones are under Closed
      return c.status === "open" && c.assignee_id !== null && c.assignee_id === me;
    case "unassigned":
      return c.status === "open" && c.assignee_id === null;
  }
}

/** Insert or replace one conversation; keeps the order. */
export function upsert(items: readonly InboxConversation[], conversation: InboxConversation): InboxConversation[] {
  return sortInbox([...items.filter((c) => c.id !== conversation.id), conversation]);
}

/** `conversation:updated`: shared fields change; the reader's own unread count and the last
 * message stay as this client knows them. Unknown conversations are left to the caller. */
export function applyUpdate(items: readonly InboxConversation[], update: ConversationEvent): InboxConversation[] {
  const current = items.find((c) => c.id === update.id);
  if (!current) return [...items];
  const newer = Date.parse(update.last_activity_at) >= Date.parse(current.last_activity_at);
  const merged: InboxConversation = {
    ...current,
    status: update.status,
    assignee_id: update.assignee_id,
    subject: update.subject,
    last_seq: Math.max(current.last_seq, update.last_seq),
    last_activity_at: newer ? update.last_activity_at : current.last_activity_at,
  };
  return upsert(items, merged);
}

/** `message:new`: new preview, activity time, and one more unread when the other side wrote
 * and the agent is not looking at it. */
export function applyMessage(
  items: readonly InboxConversation[],
  message: Message,
  opts: { viewing: boolean },
): InboxConversation[] {
  const current = items.find((c) => c.id === message.conversation_id);
  if (!current || message.seq <= (current.last_message?.seq ?? 0)) return [...items];
  const fromUser = message.sender === "user";
  const merged: InboxConversation = {
    ...current,
    last_message: message,
    last_seq: Math.max(current.last_seq, message.seq),
    last_activity_at:
      Date.parse(message.created_at) > Date.parse(current.last_activity_at)
        ? message.created_at
        : current.last_activity_at,
    unread_count: fromUser && !opts.viewing ? current.unread_count + 1 : current.unread_count,
    status: fromUser ? "open" : current.status, // an end user writing reopens it
  };
  return upsert(items, merged);
}

export function markRead(items: readonly InboxConversation[], conversationId: string): InboxConversation[] {
  return items.map((c) => (c.id === conversationId && c.unread_count !== 0 ? { ...c, unread_count: 0 } : c));
}

/** How far the other side has read each conversation (for "Seen"), raised but never lowered by
 * what the server reports: a live `read` event may be newer than a list fetched before it. */
export function withPeerReads(
  reads: Readonly<Record<string, number>>,
  conversations: readonly { id: string; peer_read_seq: number }[],
): Record<string, number> {
  let next: Record<string, number> = { ...reads };
  for (const c of conversations) if (c.peer_read_seq > (next[c.id] ?? 0)) next = { ...next, [c.id]: c.peer_read_seq };
  return next;
}
