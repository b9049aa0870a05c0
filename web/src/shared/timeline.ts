// One conversation's messages as a client shows them: exactly once, in `seq` order, with the
// sender's own unconfirmed messages (optimistic sends) after them. Pure functions: every change
// returns a new Timeline, so React can compare by identity.
import type { Message } from "../api/types";

export interface PendingMessage {
  client_msg_id: string;
  body: string;
  created_at: string;
  /** sending: queued or in flight (retried automatically); failed: refused by the server. */
  status: "sending" | "failed";
  error?: string;
}

export interface Timeline {
  /** Confirmed messages, ascending and contiguous from firstSeq to lastSeq. */
  messages: Message[];
  /** Lowest seq held (1 when the whole history is loaded; 0 when empty). */
  firstSeq: number;
  /** Highest seq shown: the next message to show is lastSeq + 1. */
  lastSeq: number;
  /** Messages that arrived ahead of a gap, kept aside until the gap is filled. */
  early: Record<number, Message>;
  /** Own messages not yet confirmed, in the order they were written. */
  pending: PendingMessage[];
}

export const emptyTimeline: Timeline = { messages: [], firstSeq: 0, lastSeq: 0, early: {}, pending: [] };

export interface Applied {
  timeline: Timeline;
  /** True when a message arrived past a gap: ask the server for `sync` from lastSeq. */
  gap: boolean;
  /** Messages newly shown by this call, ascending. */
  added: Message[];
}

/** Take messages from any source (live event, send ack, sync, history) and show each once. */
export function applyMessages(timeline: Timeline, incoming: readonly Message[]): Applied {
  let { messages, firstSeq, lastSeq, early, pending } = timeline;
  const fresh = incoming.filter((m) => m.seq > lastSeq && !(m.seq in early));
  if (fresh.length === 0) return { timeline, gap: Object.keys(early).length > 0, added: [] };
  early = { ...early };
  for (const message of fresh) early[message.seq] = message;
  const added: Message[] = [];
  for (let next = early[lastSeq + 1]; next !== undefined; next = early[lastSeq + 1]) {
    delete early[next.seq];
    added.push(next);
    lastSeq = next.seq;
  }
  if (added.length > 0) {
    messages = [...messages, ...added];
    if (firstSeq === 0) firstSeq = added[0]!.seq;
    const confirmed = new Set(added.map((m) => m.client_msg_id));
    pending = pending.filter((p) => !confirmed.has(p.client_msg_id));
  }
  const gap = Object.keys(early).length > 0;
  return { timeline: { messages, firstSeq, lastSeq, early, pending }, gap, added };
}

/** Start a timeline from the newest page of history (ascending, possibly not from seq 1). */
export function fromLatest(page: readonly Message[]): Timeline {
  if (page.length === 0) return emptyTimeline;
  const sorted = [...page].sort((a, b) => a.seq - b.seq);
  const first = sorted[0]!.seq;
  const base: Timeline = { ...emptyTimeline, firstSeq: first, lastSeq: first - 1 };
  return applyMessages(base, sorted).timeline;
}

/** Scroll-back: older messages (seq < firstSeq) go in front, once each. */
export function prependHistory(timeline: Timeline, older: readonly Message[]): Timeline {
  const before = older
    .filter((m) => m.seq < timeline.firstSeq)
    .sort((a, b) => a.seq - b.seq)
    .filter((m, i, all) => i === 0 || all[i - 1]!.seq !== m.seq);
  if (before.length === 0) return timeline;
  return { ...timeline, messages: [...before, ...timeline.messages], firstSeq: before[0]!.seq };
}

export function hasOlder(timeline: Timeline): boolean {
  return timeline.firstSeq > 1;
}

export function addPending(timeline: Timeline, pending: PendingMessage): Timeline {
  const known =
    timeline.pending.some((p) => p.client_msg_id === pending.client_msg_id) ||
    timeline.messages.some((m) => m.client_msg_id === pending.client_msg_id);
  if (known) return timeline;
  return { ...timeline, pending: [...timeline.pending, pending] };
}

export function failPending(timeline: Timeline, clientMsgId: string, error: string): Timeline {
  return {
    ...timeline,
    pending: timeline.pending.map((p) =>
      p.client_msg_id === clientMsgId ? { ...p, status: "failed", error } : p,
    ),
  };
}

export function retryPending(timeline: Timeline, clientMsgId: string): Timeline {
  return {
    ...timeline,
    pending: timeline.pending.map((p) =>
      p.client_msg_id === clientMsgId ? { ...p, status: "sending", error: undefined } : p,
    ),
  };
}

export function dropPending(timeline: Timeline, clientMsgId: string): Timeline {
  return { ...timeline, pending: timeline.pending.filter((p) => p.client_msg_id !== clientMsgId) };
}

/** A client_msg_id: unique per message, generated once, reused by every retry. */
export function newClientMsgId(): string {
  const random =
    typeof crypto !== "undefined" && "randomUUID" in crypto
      ? crypto.randomUUID().replace(/-/g, "")
      : Math.random().toString(36).slice(2) + Date.now().toString(36);
  return `web-${random}`;
}
