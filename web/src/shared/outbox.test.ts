import { describe, expect, it } from "vitest";
import { Outbox, type OutboxItem, type SendResult, type Timers } from "./outbox";

class FakeTimers implements Timers {
  queue: { fn: () => void; ms: number }[] = [];
  setTimeout(fn: () => void, ms: number) {
    const entry = { fn, ms };
    this.queue.push(entry);
    return entry;
  }
  clearTimeout(handle: unknown) {
    this.queue = this.queue.filter((e) => e !== handle);
  }
  runAll() {
    const due = this.queue;
    this.queue = [];
    due.forEach((e) => e.fn());
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(script: (item: OutboxItem, call: number) => SendResult<string>) {
  const timers = new FakeTimers();
  const calls: string[] = [];
  const stored: string[] = [];
  const refused: string[] = [];
  const outbox = new Outbox<string>(
    async (item) => {
      calls.push(item.client_msg_id);
      return script(item, calls.length);
    },
    {
      onStored: (_item, message) => stored.push(message),
      onRefused: (item, code) => refused.push(`${item.client_msg_id}:${code}`),
    },
    timers,
  );
  return { outbox, timers, calls, stored, refused };
}

const item = (id: string) => ({ conversation_id: "c", body: id, client_msg_id: id });

describe("outbox", () => {
  it("holds messages while offline and sends them in order once online", async () => {
    const { outbox, calls, stored } = setup((i) => ({ kind: "stored", message: i.body }));
    outbox.enqueue(item("a"));
    outbox.enqueue(item("b"));
    await flush();
    expect(calls).toEqual([]);
    outbox.setOnline(true);
    await flush();
    expect(stored).toEqual(["a", "b"]);
    expect(outbox.pending).toEqual([]);
  });

  it("retries a failed send with the same client_msg_id, before anything after it", async () => {
    const { outbox, timers, calls, stored } = setup((i, n) =>
      n <= 2 ? { kind: "retry", error: "timeout" } : { kind: "stored", message: i.body },
    );
    outbox.setOnline(true);
    outbox.enqueue(item("a"));
    outbox.enqueue(item("b"));
    await flush();
    expect(calls).toEqual(["a"]);
    expect(timers.queue[0]?.ms).toBe(500); // backoff
    timers.runAll();
    await flush();
    expect(timers.queue[0]?.ms).toBe(1000);
    timers.runAll();
    await flush();
    expect(calls).toEqual(["a", "a", "a", "b"]);
    expect(stored).toEqual(["a", "b"]);
  });

  it("retries at once on reconnect, and treats a thrown error as transient", async () => {
    let fail = true;
    const { outbox, timers, stored } = setup((i) => {
      if (fail) throw new Error("socket closed");
      return { kind: "stored", message: i.body };
    });
    outbox.setOnline(true);
    outbox.enqueue(item("a"));
    await flush();
    expect(stored).toEqual([]);
    fail = false;
    outbox.setOnline(false);
    outbox.setOnline(true); // reconnected: no need to wait for the backoff
    await flush();
    expect(stored).toEqual(["a"]);
    expect(timers.queue).toEqual([]);
  });

  it("reports refusals and goes on with the next message", async () => {
    const { outbox, stored, refused } = setup((i) =>
      i.body === "bad" ? { kind: "refused", code: "VALIDATION_ERROR", error: "no" } : { kind: "stored", message: i.body },
    );
    outbox.setOnline(true);
    outbox.enqueue(item("bad"));
    outbox.enqueue(item("good"));
    await flush();
    expect(refused).toEqual(["bad:VALIDATION_ERROR"]);
    expect(stored).toEqual(["good"]);
  });

  it("never queues one client_msg_id twice, and rebinds a new conversation's messages", async () => {
    const seen: string[] = [];
    const { outbox } = setup((i) => {
      seen.push(i.conversation_id);
      return { kind: "stored", message: i.body };
    });
    outbox.enqueue({ ...item("a"), conversation_id: "new" });
    outbox.enqueue({ ...item("a"), conversation_id: "new" });
    expect(outbox.pending).toHaveLength(1);
    outbox.rebind("new", "c-9");
    outbox.setOnline(true);
    await flush();
    expect(seen).toEqual(["c-9"]);
  });
});

describe("acknowledgements", () => {
  it("retries what the network or a busy server lost, and reports what the server refused", async () => {
    const { sendResult } = await import("./socket");
    expect(sendResult({ ok: true, message: "m" })).toEqual({ kind: "stored", message: "m" });
    for (const code of ["TIMEOUT", "RATE_LIMITED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"]) {
      expect(sendResult({ ok: false, code, error: "x" }).kind).toBe("retry");
    }
    for (const code of ["VALIDATION_ERROR", "NOT_FOUND", "PERMISSION_DENIED"]) {
      expect(sendResult({ ok: false, code, error: "x" })).toEqual({ kind: "refused", code, error: "x" });
    }
  });
});
