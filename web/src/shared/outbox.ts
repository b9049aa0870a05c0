// Sends that must arrive exactly once and in the order written, whatever the network does.
// Items leave one at a time; each keeps its client_msg_id across retries (the server stores a
// client_msg_id once per conversation), so a retry after a lost acknowledgement duplicates
// nothing. Transient failures are retried with backoff; refusals are reported and dropped.

export interface OutboxItem {
  /** The conversation, or a local key (e.g. "new") that `rebind` later replaces. */
  conversation_id: string;
  body: string;
  client_msg_id: string;
  attempts: number;
}

export type SendResult<M> =
  | { kind: "stored"; message: M }
  | { kind: "refused"; code: string; error: string }
  | { kind: "retry"; error: string };

export interface OutboxHooks<M> {
  onStored(item: OutboxItem, message: M): void;
  onRefused(item: OutboxItem, code: string, error: string): void;
  onChange?(items: readonly OutboxItem[]): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Codes worth another try: the server or the path to it was busy, not the message wrong. */
export const RETRYABLE_CODES = new Set(["RATE_LIMITED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"]);

export function backoffMs(attempt: number): number {
  return Math.min(500 * 2 ** Math.max(0, attempt - 1), 10_000);
}

export class Outbox<M> {
  private items: OutboxItem[] = [];
  private isOnline = false;
  private running = false;
  private timer: unknown = null;

  constructor(
    private readonly send: (item: OutboxItem) => Promise<SendResult<M>>,
    private readonly hooks: OutboxHooks<M>,
    private readonly timers: Timers = realTimers,
    private readonly backoff: (attempt: number) => number = backoffMs,
  ) {}

  get pending(): readonly OutboxItem[] {
    return this.items;
  }

  /** Load items kept from an earlier page (e.g. localStorage), before any new ones. */
  restore(items: readonly OutboxItem[]): void {
    const known = new Set(this.items.map((i) => i.client_msg_id));
    this.items = [...items.filter((i) => !known.has(i.client_msg_id)), ...this.items];
    this.changed();
    this.kick();
  }

  enqueue(item: Omit<OutboxItem, "attempts">): void {
    if (this.items.some((i) => i.client_msg_id === item.client_msg_id)) return;
    this.items.push({ ...item, attempts: 0 });
    this.changed();
    this.kick();
  }

  /** A retry asked for by the person (after a refusal): same client_msg_id, to the back. */
  retry(item: Omit<OutboxItem, "attempts">): void {
    this.items = this.items.filter((i) => i.client_msg_id !== item.client_msg_id);
    this.enqueue(item);
  }

  rebind(from: string, to: string): void {
    this.items = this.items.map((i) => (i.conversation_id === from ? { ...i, conversation_id: to } : i));
    this.changed();
  }

  clear(): void {
    this.items = [];
    this.cancelTimer();
    this.changed();
  }

  setOnline(online: boolean): void {
    this.isOnline = online;
    if (online) {
      this.cancelTimer();
      this.kick();
    }
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private changed(): void {
    this.hooks.onChange?.(this.items);
  }

  private kick(): void {
    if (!this.running && this.timer === null && this.isOnline) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.isOnline && this.items.length > 0) {
        const item = this.items[0]!;
        let result: SendResult<M>;
        try {
          result = await this.send(item);
        } catch (error) {
          result = { kind: "retry", error: String(error) };
        }
        if (this.items[0]?.client_msg_id !== item.client_msg_id) continue; // cleared meanwhile
        if (result.kind === "retry") {
          item.attempts += 1;
          this.changed();
          this.timer = this.timers.setTimeout(() => {
            this.timer = null;
            this.kick();
          }, this.backoff(item.attempts));
          return;
        }
        this.items.shift();
        this.changed();
        if (result.kind === "stored") this.hooks.onStored(item, result.message);
        else this.hooks.onRefused(item, result.code, result.error);
      }
    } finally {
      this.running = false;
    }
  }
}
