import { describe, expect, it } from "vitest";
import { conversation, message } from "./fixtures";
import { applyMessage, applyUpdate, markRead, matches, sortInbox, upsert, withPeerReads } from "./inbox";

const ids = (items: { id: string }[]) => items.map((c) => c.id);

describe("inbox", () => {
  it("orders by last activity, newest first", () => {
    expect(ids(sortInbox([conversation("a", 30), conversation("b", 10), conversation("c", 20)]))).toEqual(["b", "c", "a"]);
  });

  it("moves a conversation to the top when a message arrives, with preview and unread", () => {
    let items = sortInbox([conversation("a", 30), conversation("b", 10)]);
    const m = message(2, { conversation_id: "a", created_at: "2026-01-01T12:00:05Z", body: "new!" });
    items = applyMessage(items, m, { viewing: false });
    expect(ids(items)).toEqual(["a", "b"]);
    expect(items[0]).toMatchObject({ unread_count: 1, last_seq: 2 });
    expect(items[0]!.last_message?.body).toBe("new!");
    // The same message again (e.g. after a reconnect) counts once.
    expect(applyMessage(items, m, { viewing: false })[0]!.unread_count).toBe(1);
    // Agent replies and messages read while viewing add no unread.
    const reply = message(3, { conversation_id: "a", sender: "agent", created_at: "2026-01-01T12:00:06Z" });
    expect(applyMessage(items, reply, { viewing: false })[0]!.unread_count).toBe(1);
    expect(markRead(items, "a")[0]!.unread_count).toBe(0);
  });

  it("applies status and assignee changes and filters by them", () => {
    let items = [conversation("a", 10)];
    const a = items[0]!;
    items = applyUpdate(items, { ...a, status: "closed", assignee_id: "me" });
    expect(items[0]).toMatchObject({ status: "closed", assignee_id: "me" });
    expect(matches(items[0]!, "closed", "me")).toBe(true);
    expect(matches(items[0]!, "open", "me")).toBe(false);
    // Mine lists open conversations assigned to me: a closed one of mine is under Closed only
    // (this asserted that Mine listed it before issue 13).
    expect(matches(items[0]!, "mine", "me")).toBe(false);
    expect(matches({ status: "open", assignee_id: "me" }, "mine", "me")).toBe(true);
    expect(matches({ status: "open", assignee_id: "me" }, "mine", "other")).toBe(false);
    expect(matches({ status: "open", assignee_id: null }, "unassigned", "me")).toBe(true);
  });

  it("upserts without duplicates", () => {
    const items = upsert([conversation("a", 10)], conversation("a", 5, { unread_count: 2 }));
    expect(items).toHaveLength(1);
    expect(items[0]!.unread_count).toBe(2);
  });

  it("takes the other side's read markers from the server, never lowering a newer live one", () => {
    const fetched = [conversation("a", 10, { peer_read_seq: 4 }), conversation("b", 20, { peer_read_seq: 2 })];
    expect(withPeerReads({}, fetched)).toEqual({ a: 4, b: 2 });
    expect(withPeerReads({ a: 6 }, fetched)).toEqual({ a: 6, b: 2 });
  });
});
