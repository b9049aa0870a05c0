import { describe, expect, it } from "vitest";
import { message } from "./fixtures";
import {
  addPending,
  applyMessages,
  emptyTimeline,
  failPending,
  fromLatest,
  hasOlder,
  prependHistory,
  retryPending,
} from "./timeline";

const seqs = (t: { messages: { seq: number }[] }) => t.messages.map((m) => m.seq);

describe("ordering by seq", () => {
  it("shows messages in seq order whatever order they arrive in", () => {
    const a = applyMessages(emptyTimeline, [message(2), message(3)]);
    expect(seqs(a.timeline)).toEqual([]);
    expect(a.gap).toBe(true); // 1 is missing: ask for sync
    const b = applyMessages(a.timeline, [message(1)]);
    expect(seqs(b.timeline)).toEqual([1, 2, 3]);
    expect(b.gap).toBe(false);
    expect(b.added.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it("keeps early messages aside until the gap is filled by sync", () => {
    let t = applyMessages(emptyTimeline, [message(1)]).timeline;
    const early = applyMessages(t, [message(4)]);
    expect(early.gap).toBe(true);
    expect(seqs(early.timeline)).toEqual([1]);
    t = applyMessages(early.timeline, [message(2), message(3), message(4)]).timeline;
    expect(seqs(t)).toEqual([1, 2, 3, 4]);
    expect(t.early).toEqual({});
  });

  it("starts from the newest page and scrolls back without duplicates", () => {
    let t = fromLatest([message(52), message(51), message(53)]);
    expect(seqs(t)).toEqual([51, 52, 53]);
    expect(hasOlder(t)).toBe(true);
    t = prependHistory(t, [message(50), message(49), message(51), message(49)]);
    expect(seqs(t)).toEqual([49, 50, 51, 52, 53]);
    t = applyMessages(t, [message(54)]).timeline;
    expect(seqs(t)).toEqual([49, 50, 51, 52, 53, 54]);
    t = prependHistory(fromLatest([message(2)]), [message(1)]);
    expect(hasOlder(t)).toBe(false);
  });
});

describe("dedupe", () => {
  it("shows a message once, from live events, acks and sync alike", () => {
    let t = applyMessages(emptyTimeline, [message(1)]).timeline;
    const again = applyMessages(t, [message(1)]);
    expect(again.timeline).toBe(t); // nothing changed
    expect(again.added).toEqual([]);
    t = applyMessages(t, [message(2), message(2), message(3)]).timeline;
    t = applyMessages(t, [message(1), message(2), message(3)]).timeline;
    expect(seqs(t)).toEqual([1, 2, 3]);
  });

  it("replaces an optimistic message by the stored one with the same client_msg_id", () => {
    let t = addPending(emptyTimeline, { client_msg_id: "mine-1", body: "hi", created_at: "", status: "sending" });
    t = addPending(t, { client_msg_id: "mine-1", body: "hi", created_at: "", status: "sending" });
    expect(t.pending).toHaveLength(1);
    t = applyMessages(t, [message(1, { client_msg_id: "mine-1", body: "hi" })]).timeline;
    expect(t.pending).toEqual([]);
    expect(t.messages.map((m) => m.body)).toEqual(["hi"]);
    // Already stored: adding it as pending again (a late retry) shows nothing twice.
    expect(addPending(t, { client_msg_id: "mine-1", body: "hi", created_at: "", status: "sending" })).toBe(t);
  });

  it("marks a refused send failed, and back to sending on retry", () => {
    let t = addPending(emptyTimeline, { client_msg_id: "x", body: "b", created_at: "", status: "sending" });
    t = failPending(t, "x", "too long");
    expect(t.pending[0]).toMatchObject({ status: "failed", error: "too long" });
    t = retryPending(t, "x");
    expect(t.pending[0]).toMatchObject({ status: "sending" });
  });
});
