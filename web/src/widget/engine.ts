// The messenger's brain: who the end user is, their conversations, live messages, the offline
// queue. No DOM here; the React view subscribes to snapshots.
import createClient from "openapi-fetch";
import type { paths } from "../api/schema";
import type { Conversation, EndUser, Message } from "../api/types";
import { NETWORK_ERROR, safeFetch, transient } from "../shared/http";
import { withPeerReads } from "../shared/inbox";
import { Outbox, type OutboxItem, type SendResult } from "../shared/outbox";
import {
  ACK_TIMEOUT_MS,
  type ConnectionState,
  followNetwork,
  isOnline,
  type LiveSocket,
  openSocket,
  request,
  sendResult,
} from "../shared/socket";
import { blockedBy, type Blocked, originRefused, tellDeveloper } from "./blocked";
import {
  addPending,
  applyMessages,
  dropPending,
  emptyTimeline,
  failPending,
  fromLatest,
  newClientMsgId,
  prependHistory,
  retryPending,
  type Timeline,
} from "../shared/timeline";

export interface Identity {
  user_id?: string;
  user_hash?: string;
  name?: string;
  email?: string;
  attributes?: Record<string, unknown>;
}

export interface Config {
  appId: string;
  apiKey: string;
  baseUrl: string;
}

/** The conversation being written before the server has created it. */
export const NEW = "new";

/** What the end user is told when support closes their conversation. */
export const CLOSED_TEXT = "This conversation was closed.";

export interface Snapshot {
  ready: boolean;
  state: ConnectionState;
  error: string | null;
  /** Why the messenger cannot be used at all on this page (shown instead of a composer). */
  blocked: Blocked | null;
  /** The latest thing worth telling a screen reader (read out by an aria-live region). */
  announcement: string;
  user: EndUser | null;
  conversations: Conversation[];
  current: string | null;
  timelines: Record<string, Timeline>;
  typing: Record<string, string | null>;
  agentRead: Record<string, number>;
  unread: number;
  open: boolean;
}

const HISTORY_PAGE = 50;

/** Handshake refusals that no retry can change (others, e.g. a busy database, are retried). */
const PERMANENT_REFUSALS = new Set(["IDENTITY_REQUIRED", "INVALID_USER_HASH", "INVALID_CREDENTIALS", "DEVICE_ID_REQUIRED"]);

function storageKey(appId: string, what: string): string {
  return `replyhq:${appId}:${what}`;
}

function load<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

function save(key: string, value: unknown): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or blocked (private mode): the messenger still works for this page.
  }
}

function newDeviceId(): string {
  const random = typeof crypto !== "undefined" && "randomUUID" in crypto ? crypto.randomUUID() : String(Math.random()).slice(2);
  return `web-${random}`;
}

export class Messenger {
  private snapshot: Snapshot = {
    ready: false,
    state: "connecting",
    error: null,
    blocked: null,
    announcement: "",
    user: null,
    conversations: [],
    current: null,
    timelines: {},
    typing: {},
    agentRead: {},
    unread: 0,
    open: false,
  };
  private listeners = new Set<() => void>();
  private unreadListeners = new Set<(count: number) => void>();
  private lastUnread = -1;
  private chain: Promise<unknown> = Promise.resolve();
  private socket: LiveSocket | null = null;
  private unfollow: (() => void) | null = null;
  private readonly http;
  private readonly outbox: Outbox<Message>;
  private deviceId: string;
  private identity: Identity | null;
  private typingTimers: Record<string, ReturnType<typeof setTimeout>> = {};
  private generation = 0; // bumped on every identity change: late answers for the old person are dropped

  constructor(private readonly config: Config) {
    this.http = createClient<paths>({ baseUrl: config.baseUrl, fetch: safeFetch });
    this.deviceId = load<string>(storageKey(config.appId, "device")) ?? newDeviceId();
    save(storageKey(config.appId, "device"), this.deviceId);
    this.identity = load<Identity>(storageKey(config.appId, "identity"));
    this.outbox = new Outbox<Message>((item) => this.deliver(item), {
      onStored: (item, message) => this.stored(item, message),
      onRefused: (item, _code, error) => this.refused(item, error),
      onChange: (items) => save(this.queueKey(), items),
    });
    this.showQueued();
    document.addEventListener("visibilitychange", () => {
      const current = this.snapshot.current;
      if (current && current !== NEW && document.visibilityState === "visible") this.markRead(current);
    });
  }

  // --- subscription (React's useSyncExternalStore) --------------------------------------------

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): Snapshot => this.snapshot;

  onUnreadCountChange(callback: (count: number) => void): () => void {
    this.unreadListeners.add(callback);
    callback(this.snapshot.unread);
    return () => this.unreadListeners.delete(callback);
  }

  private set(change: Partial<Snapshot>): void {
    this.snapshot = { ...this.snapshot, ...change };
    const unread = this.snapshot.conversations.reduce((n, c) => n + c.unread_count, 0);
    if (unread !== this.snapshot.unread) this.snapshot = { ...this.snapshot, unread };
    this.listeners.forEach((l) => l());
    if (unread !== this.lastUnread) {
      this.lastUnread = unread;
      this.unreadListeners.forEach((cb) => cb(unread));
    }
  }

  private timeline(id: string): Timeline {
    return this.snapshot.timelines[id] ?? emptyTimeline;
  }

  private setTimeline(id: string, timeline: Timeline): void {
    this.set({ timelines: { ...this.snapshot.timelines, [id]: timeline } });
  }

  private queueKey(): string {
    return storageKey(this.config.appId, `outbox:${this.deviceId}`);
  }

  /** The SDK headers of this device (the UI layer's own calls: visitor context, ratings). */
  sdkHeaders(): Record<string, string> {
    return this.headers();
  }

  private headers(): Record<string, string> {
    return { "X-App-Id": this.config.appId, "X-Api-Key": this.config.apiKey, "X-Device-Id": this.deviceId };
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.chain.then(task, task);
    this.chain = next.catch(() => undefined);
    return next;
  }

  // --- identity --------------------------------------------------------------------------------

  boot(): Promise<void> {
    return this.serial(async () => {
      if (!this.snapshot.ready) await this.start(); // identify() may have started it already
    });
  }

  identify(identity: Identity): Promise<void> {
    return this.serial(async () => {
      const previous = this.identity?.user_id ?? null;
      if (previous !== null && previous !== (identity.user_id ?? null)) {
        // Another person on this device: nothing of the previous one may remain.
        this.forget();
        this.deviceId = newDeviceId();
        save(storageKey(this.config.appId, "device"), this.deviceId);
      }
      this.identity = identity;
      save(storageKey(this.config.appId, "identity"), identity.user_id ? identity : null);
      await this.start();
    });
  }

  logout(): Promise<void> {
    return this.serial(async () => {
      this.forget();
      this.identity = null;
      save(storageKey(this.config.appId, "identity"), null);
      // A fresh device id: the next person on this browser starts as a brand-new visitor.
      this.deviceId = newDeviceId();
      save(storageKey(this.config.appId, "device"), this.deviceId);
      await this.start();
    });
  }

  /** Drop everything known about the current person, in memory and in storage. */
  private forget(): void {
    this.generation += 1;
    this.outbox.clear();
    save(this.queueKey(), null);
    this.closeSocket();
    this.set({
      ready: false,
      user: null,
      conversations: [],
      current: null,
      timelines: {},
      typing: {},
      agentRead: {},
      unread: 0,
    });
  }

  private async start(): Promise<void> {
    const generation = this.generation;
    const body = {
      platform: "web" as const,
      user_id: this.identity?.user_id,
      user_hash: this.identity?.user_hash,
      name: this.identity?.name,
      email: this.identity?.email,
      attributes: this.identity?.attributes as Record<string, never> | undefined,
      locale: navigator.language?.slice(0, 35),
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    };
    const { data, error, response } = await this.http.POST("/v1/identify", { body, headers: this.headers() });
    if (generation !== this.generation) return;
    if (!data) {
      const code = (error as { code?: string } | undefined)?.code ?? "";
      if (!transient(response.status)) {
        // Refused (e.g. the app requires verified users): wait for the page to identify.
        this.block(code, errorText(error, "refused"));
        return;
      }
      if (code === NETWORK_ERROR && (await originRefused(this.config.baseUrl, this.config.appId))) {
        if (generation === this.generation) this.block("ORIGIN_REFUSED", "");
        return; // nothing changes until the server's ALLOWED_ORIGINS does (and the page reloads)
      }
      this.set({ error: "Could not reach support; trying again…", state: isOnline() ? "reconnecting" : "offline" });
      setTimeout(() => {
        if (generation === this.generation && !this.snapshot.ready) void this.serial(() => this.start());
      }, 3000);
      return;
    }
    this.set({ user: data.user, error: null, blocked: null, ready: true });
    this.showQueued();
    await this.loadConversations();
    const current = this.snapshot.current;
    if (current && current !== NEW && this.timeline(current).lastSeq === 0) void this.openConversation(current);
    this.connect();
  }

  /** Messages written on an earlier page and not yet sent: shown at once (even before the server
   * answers), in the conversation they belong to, and sent when the connection allows. */
  private showQueued(): void {
    this.outbox.restore(load<OutboxItem[]>(this.queueKey()) ?? []);
    const queued = this.outbox.pending;
    for (const item of queued) this.showPending(item);
    if (queued.length > 0 && this.snapshot.current === null) this.set({ current: queued[0]!.conversation_id });
  }

  /** The messenger cannot be used here: say so to the person in plain words, and to the
   * developer in the console with what to change. */
  private block(code: string, serverText: string): void {
    const blocked = blockedBy(code);
    tellDeveloper(blocked, code, serverText, this.config.baseUrl);
    this.outbox.setOnline(false);
    this.set({ blocked, error: null, state: "offline" });
  }

  // --- conversations ---------------------------------------------------------------------------

  async loadConversations(): Promise<void> {
    const generation = this.generation;
    const { data } = await this.http.GET("/v1/conversations", { headers: this.headers(), params: { query: { limit: 50 } } });
    if (!data || generation !== this.generation) return;
    this.set({ conversations: data.items, agentRead: withPeerReads(this.snapshot.agentRead, data.items) });
  }

  async openConversation(id: string | null): Promise<void> {
    this.set({ current: id });
    if (id === null || id === NEW) return;
    if (this.timeline(id).lastSeq === 0) {
      const generation = this.generation;
      const { data } = await this.http.GET("/v1/conversations/{conversation_id}/messages", {
        headers: this.headers(),
        params: { path: { conversation_id: id }, query: { before_seq: 2 ** 31 - 1, limit: HISTORY_PAGE } },
      });
      if (!data || generation !== this.generation) return;
      const loaded = fromLatest(data.items);
      const current = this.timeline(id);
      // Keep anything that arrived live meanwhile.
      const merged = applyMessages({ ...loaded, pending: current.pending }, current.messages).timeline;
      this.setTimeline(id, merged);
      void this.syncConversation(id);
    }
    this.markRead(id);
  }

  async loadOlder(id: string): Promise<void> {
    const timeline = this.timeline(id);
    if (timeline.firstSeq <= 1) return;
    const { data } = await this.http.GET("/v1/conversations/{conversation_id}/messages", {
      headers: this.headers(),
      params: { path: { conversation_id: id }, query: { before_seq: timeline.firstSeq, limit: HISTORY_PAGE } },
    });
    if (data) this.setTimeline(id, prependHistory(this.timeline(id), data.items));
  }

  setOpen(open: boolean): void {
    this.set({ open });
    const current = this.snapshot.current;
    if (open && current) this.markRead(current);
    else if (open && current === null) {
      // Opened because of a reply: show it rather than the list.
      const waiting = this.snapshot.conversations.find((c) => c.unread_count > 0);
      if (waiting) void this.openConversation(waiting.id);
    }
  }

  private isViewing(id: string): boolean {
    return this.snapshot.open && this.snapshot.current === id && document.visibilityState !== "hidden";
  }

  private markRead(id: string): void {
    if (!this.isViewing(id)) return;
    const seq = this.timeline(id).lastSeq;
    const conversation = this.snapshot.conversations.find((c) => c.id === id);
    if (!conversation || seq === 0) return;
    if (conversation.unread_count !== 0) {
      this.set({ conversations: this.snapshot.conversations.map((c) => (c.id === id ? { ...c, unread_count: 0 } : c)) });
    }
    const socket = this.socket;
    if (socket) void request(socket, (s) => s.timeout(ACK_TIMEOUT_MS).emitWithAck("read", { conversation_id: id, seq }));
  }

  // --- sending ---------------------------------------------------------------------------------

  send(body: string): void {
    const text = body.trim();
    if (!text) return;
    const conversationId = this.snapshot.current ?? NEW;
    const item = { conversation_id: conversationId, body: text, client_msg_id: newClientMsgId() };
    if (conversationId === NEW) this.set({ current: NEW });
    this.showPending({ ...item, attempts: 0 });
    this.outbox.enqueue(item);
    this.typing(false);
  }

  retry(conversationId: string, clientMsgId: string): void {
    const pending = this.timeline(conversationId).pending.find((p) => p.client_msg_id === clientMsgId);
    if (!pending) return;
    this.setTimeline(conversationId, retryPending(this.timeline(conversationId), clientMsgId));
    this.outbox.retry({ conversation_id: conversationId, body: pending.body, client_msg_id: clientMsgId });
  }

  discard(conversationId: string, clientMsgId: string): void {
    this.setTimeline(conversationId, dropPending(this.timeline(conversationId), clientMsgId));
  }

  private showPending(item: OutboxItem): void {
    const timeline = addPending(this.timeline(item.conversation_id), {
      client_msg_id: item.client_msg_id,
      body: item.body,
      created_at: new Date().toISOString(),
      status: "sending",
    });
    this.setTimeline(item.conversation_id, timeline);
  }

  private async deliver(item: OutboxItem): Promise<SendResult<Message>> {
    if (item.conversation_id === NEW) return this.create(item);
    const socket = this.socket;
    if (!socket) return { kind: "retry", error: "not connected" };
    const ack = await request(socket, (s) =>
      s.timeout(ACK_TIMEOUT_MS).emitWithAck("message:send", {
        conversation_id: item.conversation_id,
        body: item.body,
        client_msg_id: item.client_msg_id,
      }),
    );
    return sendResult(ack);
  }

  /** The first message of a new conversation: created over HTTP (idempotent by client_msg_id). */
  private async create(item: OutboxItem): Promise<SendResult<Message>> {
    const generation = this.generation;
    const { data, error, response } = await this.http.POST("/v1/conversations", {
      headers: this.headers(),
      body: { first_message: { body: item.body, client_msg_id: item.client_msg_id } },
    });
    if (generation !== this.generation) return { kind: "refused", code: "STALE", error: "signed out" };
    if (!data) {
      const code = (error as { code?: string } | undefined)?.code ?? "TIMEOUT";
      if (transient(response.status)) return { kind: "retry", error: code };
      if (response.status === 401) {
        this.block(code, errorText(error, "refused"));
        return { kind: "retry", error: code }; // kept: sent once the page identifies
      }
      return { kind: "refused", code, error: errorText(error, "Not sent.") };
    }
    const id = data.id;
    const draft = this.timeline(NEW);
    const timelines = { ...this.snapshot.timelines };
    delete timelines[NEW];
    timelines[id] = applyMessages({ ...emptyTimeline, pending: draft.pending }, data.last_message ? [data.last_message] : []).timeline;
    this.outbox.rebind(NEW, id);
    const conversations = [data, ...this.snapshot.conversations.filter((c) => c.id !== id)];
    this.set({ timelines, conversations, current: this.snapshot.current === NEW ? id : this.snapshot.current });
    if (!data.last_message) return { kind: "retry", error: "no message" };
    return { kind: "stored", message: data.last_message };
  }

  private stored(item: OutboxItem, message: Message): void {
    this.receive(message);
    const timeline = this.timeline(message.conversation_id);
    if (timeline.pending.some((p) => p.client_msg_id === item.client_msg_id)) {
      this.setTimeline(message.conversation_id, dropPending(timeline, item.client_msg_id));
    }
  }

  private refused(item: OutboxItem, error: string): void {
    this.setTimeline(item.conversation_id, failPending(this.timeline(item.conversation_id), item.client_msg_id, error));
  }

  // --- typing ----------------------------------------------------------------------------------

  private typingSent = false;
  private typingStop: ReturnType<typeof setTimeout> | null = null;

  typing(active: boolean): void {
    const id = this.snapshot.current;
    const socket = this.socket;
    if (!id || id === NEW || !socket?.connected) return;
    if (this.typingStop) clearTimeout(this.typingStop);
    if (active) this.typingStop = setTimeout(() => this.typing(false), 3000);
    if (active === this.typingSent) return;
    this.typingSent = active;
    socket.emit("typing", { conversation_id: id, typing: active }, () => undefined);
  }

  // --- real time -------------------------------------------------------------------------------

  private closeSocket(): void {
    this.unfollow?.();
    this.unfollow = null;
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
    this.outbox.setOnline(false);
  }

  private connect(): void {
    this.closeSocket();
    const generation = this.generation;
    const socket = openSocket(this.config.baseUrl, "/", (cb) =>
      cb({
        app_id: this.config.appId,
        api_key: this.config.apiKey,
        device_id: this.deviceId,
        user_id: this.identity?.user_id,
        user_hash: this.identity?.user_hash,
      }),
    );
    this.socket = socket;
    const mine = () => generation === this.generation && this.socket === socket;
    socket.on("connect", () => {
      if (!mine()) return;
      this.set({ state: "connected", error: null });
      void this.catchUp().then(() => this.outbox.setOnline(true));
    });
    socket.on("resync", () => {
      if (mine()) void this.catchUp();
    });
    socket.on("disconnect", (reason) => {
      if (!mine()) return;
      this.outbox.setOnline(false);
      this.set({ state: isOnline() ? "reconnecting" : "offline", typing: {} });
      // Closed by the server (e.g. this device changed hands or the keys rotated): try again;
      // the handshake says whether we are still welcome.
      if (reason === "io server disconnect") setTimeout(() => mine() && socket.connect(), 1000);
    });
    socket.on("connect_error", (error) => {
      if (!mine()) return;
      const code = (error as { data?: { code?: string } }).data?.code;
      this.set({ state: isOnline() ? "reconnecting" : "offline" });
      // Unknown, or its identity's proof no longer counts (e.g. the app now requires it, or the
      // identity secret was rotated): identify again, with the page's user_hash if it gave one.
      if (code === "DEVICE_UNKNOWN" || code === "DEVICE_UNVERIFIED") void this.serial(() => this.start());
      else if (code && PERMANENT_REFUSALS.has(code)) {
        socket.disconnect(); // retrying cannot help until the page identifies again (or reloads)
        this.block(code, (error as { data?: { error?: string } }).data?.error ?? error.message);
      } else if (code) {
        // A refused handshake is not retried by the client itself; this one may pass later.
        this.set({ error: "Support cannot be reached right now; trying again…" });
        setTimeout(() => mine() && !socket.connected && socket.connect(), 3000);
      }
    });
    socket.on("message:new", ({ message }) => mine() && this.receive(message));
    socket.on("conversation:updated", ({ conversation }) => {
      if (!mine()) return;
      const known = this.snapshot.conversations.some((c) => c.id === conversation.id);
      if (!known) {
        void this.loadConversations();
        return;
      }
      const before = this.snapshot.conversations.find((c) => c.id === conversation.id);
      if (before?.status === "open" && conversation.status === "closed") this.announce(CLOSED_TEXT);
      this.set({
        conversations: this.snapshot.conversations.map((c) =>
          c.id === conversation.id
            ? { ...c, status: conversation.status, assignee_id: conversation.assignee_id, last_activity_at: conversation.last_activity_at }
            : c,
        ),
      });
    });
    socket.on("typing", ({ conversation_id, who, typing }) => {
      if (!mine() || who.type !== "agent") return;
      clearTimeout(this.typingTimers[conversation_id]);
      if (typing) this.typingTimers[conversation_id] = setTimeout(() => this.setTyping(conversation_id, null), 8000);
      this.setTyping(conversation_id, typing ? who.name || "Support" : null);
    });
    socket.on("read", ({ conversation_id, who, seq }) => {
      if (!mine() || who.type !== "agent") return;
      const before = this.snapshot.agentRead[conversation_id] ?? 0;
      if (seq > before) this.set({ agentRead: { ...this.snapshot.agentRead, [conversation_id]: seq } });
    });
    this.unfollow = followNetwork(socket, () => {
      this.outbox.setOnline(false);
      this.set({ state: "offline" });
    });
    this.set({ state: isOnline() ? (this.snapshot.state === "connected" ? "reconnecting" : "connecting") : "offline" });
    if (isOnline()) socket.connect();
  }

  /** Read out by screen readers (an aria-live region); a repeated text still counts as new. */
  private announce(text: string): void {
    const same = this.snapshot.announcement.replace(/\u00a0$/, "") === text;
    this.set({ announcement: same && !this.snapshot.announcement.endsWith("\u00a0") ? `${text}\u00a0` : text });
  }

  private setTyping(conversationId: string, name: string | null): void {
    this.set({ typing: { ...this.snapshot.typing, [conversationId]: name } });
  }

  /** After every (re)connect: what happened meanwhile, once each, in order. */
  private async catchUp(): Promise<void> {
    await this.loadConversations();
    await Promise.all(
      Object.keys(this.snapshot.timelines)
        .filter((id) => id !== NEW && this.timeline(id).lastSeq > 0)
        .map((id) => this.syncConversation(id)),
    );
  }

  private syncing = new Set<string>();

  private async syncConversation(id: string): Promise<void> {
    const socket = this.socket;
    if (!socket || this.syncing.has(id)) return;
    this.syncing.add(id);
    try {
      for (;;) {
        const after = this.timeline(id).lastSeq;
        const ack = await request(socket, (s) =>
          s.timeout(ACK_TIMEOUT_MS).emitWithAck("sync", { conversation_id: id, after_seq: after }),
        );
        if (!ack.ok || socket !== this.socket) return;
        this.setTimeline(id, applyMessages(this.timeline(id), ack.messages).timeline);
        if (!ack.has_more) break;
      }
      this.markRead(id);
    } finally {
      this.syncing.delete(id);
    }
  }

  private receive(message: Message): void {
    const id = message.conversation_id;
    const known = this.snapshot.conversations.find((c) => c.id === id);
    if (!known) {
      void this.loadConversations();
    } else if (message.seq > known.last_seq) {
      // A closed/reopened event (kind "event") is shown but is nobody's unread message.
      const theirs = message.sender !== "user" && message.kind !== "event";
      if (theirs) this.announce(`${message.author.name || "Support"}: ${message.body}`);
      this.set({
        conversations: this.snapshot.conversations.map((c) =>
          c.id === id
            ? {
                ...c,
                last_seq: message.seq,
                last_message: message,
                last_activity_at: message.created_at,
                unread_count: theirs && !this.isViewing(id) ? c.unread_count + 1 : c.unread_count,
              }
            : c,
        ),
      });
    }
    if (message.sender === "agent") this.setTyping(id, null);
    const timeline = this.snapshot.timelines[id];
    if (!timeline) return; // not opened yet: history loads when it is
    const applied = applyMessages(timeline, [message]);
    this.setTimeline(id, applied.timeline);
    if (applied.gap) void this.syncConversation(id);
    if (applied.added.length > 0) this.markRead(id);
  }
}

function errorText(error: unknown, fallback: string): string {
  const text = (error as { error?: unknown } | undefined)?.error;
  return typeof text === "string" ? text : fallback;
}
