// The protocol's shapes (docs/protocol.md; JSON Schemas in src/replyhq/realtime/schemas/).

export type Sender = "user" | "agent" | "system";

export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  client_msg_id: string;
  sender: Sender;
  author: { type: Sender; id: string | null; name: string | null };
  body: string;
  body_html: string;
  created_at: string;
  /** "event": a line in the timeline (e.g. "Alice closed the conversation"), nobody's unread
   * message. Absent on older servers (every item was a message). */
  kind?: "message" | "event";
  /** What an event is about (e.g. { type: "closed" }). */
  data?: Record<string, unknown> | null;
  /** Files and images it carries (servers with attachments: docs/attachments.md). */
  attachments?: Attachment[];
}

/** A file or image (docs/attachments.md). `url` and `thumbnail_url` are signed paths on the
 * server (fileUrl() makes them addresses) that work until `urls_expire_at`; attachment(id) gives
 * fresh ones. */
export interface Attachment {
  id: string;
  /** null for an upload made before its conversation, until it is sent. */
  conversation_id: string | null;
  /** The message carrying it; null until sent. */
  message_id: string | null;
  filename: string;
  /** As found in the file's bytes, not its name. */
  content_type: string;
  size: number;
  /** image: show it inline (its thumbnail); file: a download link. */
  kind: "image" | "file";
  width: number | null;
  height: number | null;
  url: string;
  thumbnail_url: string | null;
  urls_expire_at: string;
  created_at: string;
}

/** What upload() sends: a browser's File or Blob (Blob-like: React Native's too), or bytes. */
export type UploadData = ArrayBuffer | Uint8Array | { readonly size: number; readonly type: string };

export interface Conversation {
  id: string;
  subject: string | null;
  status: "open" | "closed";
  assignee_id: string | null;
  last_seq: number;
  unread_count: number;
  peer_read_seq: number;
  last_message: Message | null;
  last_activity_at: string;
  created_at: string;
}

export interface ConversationState {
  id: string;
  end_user_id: string;
  subject: string | null;
  status: "open" | "closed";
  assignee_id: string | null;
  last_seq: number;
  last_activity_at: string;
  created_at: string;
}

export interface EndUser {
  id: string;
  user_id: string | null;
  name: string | null;
  email: string | null;
  attributes: Record<string, unknown>;
  anonymous: boolean;
  verified: boolean;
}

export interface TypingEvent {
  conversation_id: string;
  who: { type: Sender; id: string; name: string | null };
  typing: boolean;
}

export interface ReadEvent {
  conversation_id: string;
  who: { type: Sender; id: string };
  seq: number;
}

export type Platform = "ios" | "android" | "web" | "react_native" | "flutter" | "macos" | "windows" | "linux" | "other";

export interface Identity {
  userId?: string;
  /** HMAC-SHA256(identity secret, userId) in hex, computed by your backend (never in the app). */
  userHash?: string;
  name?: string;
  email?: string;
  attributes?: Record<string, unknown>;
  locale?: string;
  timezone?: string;
  appVersion?: string;
  pushToken?: string;
}

/** offline: the app said the network is gone (setOnline(false)); nothing is tried until it is back. */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "offline" | "blocked" | "closed";

export type Ack<T> = ({ ok: true } & T) | { ok: false; code: string; error: string; details?: { field: string; reason: string }[]; retry_after?: number };

/** The part of fetch the SDK uses (browsers, React Native and Node 18+ have it). */
export interface SdkFetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export type SdkFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string | UploadData },
) => Promise<SdkFetchResponse>;
