// Test data shaped exactly like the server's (types from the OpenAPI schema).
import type { InboxConversation, Message } from "../api/types";

export function message(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `m-${seq}`,
    conversation_id: "c-1",
    seq,
    client_msg_id: `cm-${seq}`,
    sender: "user",
    author: { type: "user", id: "u-1", name: "Ann" },
    body: `message ${seq}`,
    body_html: `<p>message ${seq}</p>`,
    created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    kind: "message",
    data: null,
    ...over,
  };
}

export function conversation(id: string, secondsAgo: number, over: Partial<InboxConversation> = {}): InboxConversation {
  const at = new Date(Date.UTC(2026, 0, 1, 12, 0, 0) - secondsAgo * 1000).toISOString();
  return {
    id,
    end_user_id: `u-${id}`,
    subject: null,
    status: "open",
    assignee_id: null,
    last_seq: 1,
    unread_count: 0,
    peer_read_seq: 0,
    last_message: null,
    last_activity_at: at,
    created_at: at,
    user: { id: `u-${id}`, user_id: null, name: `User ${id}`, email: null, anonymous: true, verified: false },
    label_ids: [],
    ...over,
  };
}
