// The headless client: identity, conversations, exactly-once ordered delivery, the offline queue.
// docs/protocol.md is the contract; every rule below has a section there.
import { io, type Socket } from "socket.io-client";
import { Emitter } from "./emitter";
import { fromBody, IDENTITY_REFUSALS, ReplyHQError, TRANSIENT } from "./errors";
import { defaultStorage, loadJson, saveJson, type Storage } from "./storage";
import type {
  Ack,
  Attachment,
  ConnectionState,
  Conversation,
  ConversationState,
  EndUser,
  Identity,
  Message,
  Platform,
  ReadEvent,
  SdkFetch,
  SdkFetchResponse,
  TypingEvent,
  UploadData,
} from "./types";

export interface ReplyHQOptions {
  /** The server, e.g. "https://support.example.com". */
  url: string;
  appId: string;
  /** The app's public SDK key (rhq_sdk_...). */
  sdkKey: string;
  platform?: Platform;
  /** Where the device id, the offline queue and read positions are kept (default: the page's
   * localStorage when there is one, else memory). AsyncStorage fits as it is. */
  storage?: Storage;
  /** fetch to use (default: globalThis.fetch: browsers, React Native, Node 18+). */
  fetch?: SdkFetch;
  /** How long an acknowledgement may take before the request counts as lost (ms). */
  ackTimeoutMs?: number;
  reconnectionDelayMs?: number;
  reconnectionDelayMaxMs?: number;
}

export interface OutgoingMessage {
  conversation_id: string;
  body: string;
  client_msg_id: string;
  /** Uploads (upload()) the message carries. */
  attachment_ids?: string[];
}

/** send()'s conversation id for a conversation that does not exist yet: the queued message
 * creates it (POST /v1/conversations, idempotent by client_msg_id) when it can be sent. Later
 * messages queued to NEW_CONVERSATION go to that same new conversation. */
export const NEW_CONVERSATION = "new";

export interface ClientEvents {
  /** Each message once, in seq order per conversation (yours too, once stored). */
  message: (message: Message) => void;
  /** A message queued to NEW_CONVERSATION created this conversation (before its "message"). */
  started: (conversation: Conversation, clientMsgId: string) => void;
  conversation: (conversation: ConversationState) => void;
  typing: (event: TypingEvent) => void;
  read: (event: ReadEvent) => void;
  /** The app's messenger settings changed (the new GET /v1/messenger body; servers that have
   * the `messenger:settings` event). */
  settings: (config: Record<string, unknown>) => void;
  unread: (count: number) => void;
  state: (state: ConnectionState) => void;
  /** A send the server refused (it left the queue). */
  failed: (message: OutgoingMessage, error: ReplyHQError) => void;
  /** Something the app should know about (e.g. a handshake refused for identity reasons). */
  error: (error: ReplyHQError) => void;
}

export interface Feature {
  /** false when this server does not have the route (older server): nothing was sent. */
  supported: boolean;
}

interface Cursor {
  lastSeq: number;
  early: Map<number, Message>;
}

interface Saved {
  userId: string | null;
  cursors: Record<string, number>;
  /** The first conversations() has run: conversations found later start at seq 0. */
  baselined: boolean;
}

interface Waiter {
  resolve: (message: Message) => void;
  reject: (error: ReplyHQError) => void;
}

const SYNC_LIMIT = 200;

function newId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  let id = "";
  for (let i = 0; i < 32; i++) id += Math.floor(Math.random() * 16).toString(16);
  return id;
}

/** A request body sent as it is (an upload's bytes), not as JSON. */
class Bytes {
  constructor(readonly data: UploadData) {}
}

/** A message's attachment_ids, only when it has some (older servers know no such field). */
function attachments(ids: string[] | undefined): { attachment_ids?: string[] } {
  return ids?.length ? { attachment_ids: ids } : {};
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class ReplyHQ extends Emitter<ClientEvents> {
  state: ConnectionState = "idle";
  user: EndUser | null = null;

  private readonly options: Required<Omit<ReplyHQOptions, "storage" | "fetch">>;
  private readonly storage: Storage;
  private readonly fetcher: SdkFetch;
  private deviceId = "";
  private identity: Identity | null = null;
  private saved: Saved = { userId: null, cursors: {}, baselined: false };
  private socket: Socket | null = null;
  private generation = 0; // bumped on every identity change: late answers for the old person are dropped
  private cursors = new Map<string, Cursor>();
  private syncs = new Map<string, Promise<void>>();
  private outbox: OutgoingMessage[] = [];
  private waiters = new Map<string, Waiter>();
  private flushing: Promise<void> | null = null;
  private caughtUp = false;
  private unread = new Map<string, number>();
  /** Per conversation, the seq the server's unread count already covers (not counted twice). */
  private unreadSeq = new Map<string, number>();
  private offline = false;
  private connectedAs: string | null = null;
  private lastUnread = -1;
  private pendingReads = new Map<string, number>();
  private iterators = new Set<(message: Message | null) => void>();
  private missing = new Set<string>(); // optional routes this server does not have
  private saveTimer: unknown = null;
  private readonly loaded: Promise<void>;

  constructor(options: ReplyHQOptions) {
    super();
    this.options = {
      url: options.url.replace(/\/+$/, ""),
      appId: options.appId,
      sdkKey: options.sdkKey,
      platform: options.platform ?? "other",
      ackTimeoutMs: options.ackTimeoutMs ?? 10_000,
      reconnectionDelayMs: options.reconnectionDelayMs ?? 500,
      reconnectionDelayMaxMs: options.reconnectionDelayMaxMs ?? 5000,
    };
    this.storage = options.storage ?? defaultStorage();
    const host = globalThis as { fetch?: SdkFetch };
    if (!options.fetch && !host.fetch) throw new ReplyHQError("NO_FETCH", "no fetch in this environment: pass options.fetch");
    // Called as a plain function: a browser's fetch refuses any `this` but the window.
    this.fetcher = options.fetch ?? ((url, init) => host.fetch!(url, init));
    this.loaded = this.load();
  }

  // --- storage -----------------------------------------------------------------------------

  private key(what: string): string {
    return `replyhq:${this.options.appId}:${what}`;
  }

  private async load(): Promise<void> {
    const deviceId = await loadJson<string>(this.storage, this.key("device"));
    this.deviceId = deviceId ?? `sdk-${newId()}`;
    if (!deviceId) await saveJson(this.storage, this.key("device"), this.deviceId);
    this.saved = (await loadJson<Saved>(this.storage, this.key(`${this.deviceId}:state`))) ?? this.saved;
    for (const [id, lastSeq] of Object.entries(this.saved.cursors)) this.cursors.set(id, { lastSeq, early: new Map() });
    this.outbox = (await loadJson<OutgoingMessage[]>(this.storage, this.key(`${this.deviceId}:outbox`))) ?? [];
  }

  /** Read positions are written once per turn of the event loop (a batch of messages costs one
   * write), right away: a page closed just after a message arrived must not show it again. */
  private saveState(): void {
    if (this.saveTimer !== null) return;
    const generation = this.generation;
    this.saveTimer = Promise.resolve().then(() => {
      this.saveTimer = null;
      if (generation !== this.generation) return;
      const cursors: Record<string, number> = {};
      for (const [id, cursor] of this.cursors) cursors[id] = cursor.lastSeq;
      this.saved = { ...this.saved, cursors };
      void saveJson(this.storage, this.key(`${this.deviceId}:state`), this.saved);
    });
  }

  private saveOutbox(): Promise<void> {
    return saveJson(this.storage, this.key(`${this.deviceId}:outbox`), this.outbox.length ? this.outbox : null);
  }

  /** This install's device id (stable across restarts; a new one after logout). */
  async device(): Promise<string> {
    await this.loaded;
    return this.deviceId;
  }

  // --- HTTP --------------------------------------------------------------------------------

  private async http<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
    await this.loaded;
    const generation = this.generation;
    let response: SdkFetchResponse;
    try {
      response = await this.fetcher(this.options.url + path, {
        method,
        headers: {
          // An upload's type is read from its bytes by the server, never from this header.
          "Content-Type": body instanceof Bytes ? "application/octet-stream" : "application/json",
          "X-App-Id": this.options.appId,
          "X-Api-Key": this.options.sdkKey,
          "X-Device-Id": this.deviceId,
        },
        ...(body === undefined ? {} : { body: body instanceof Bytes ? body.data : JSON.stringify(body) }),
      });
    } catch (error) {
      throw new ReplyHQError("NETWORK_ERROR", String(error));
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status < 400) return data as T;
    const error = fromBody(data, response.status);
    const retryAfter = Number(response.headers.get("Retry-After"));
    const failure =
      error.retryAfter === undefined && retryAfter > 0
        ? new ReplyHQError(error.code, error.message, { status: response.status, details: error.details, retryAfter })
        : error;
    // The device's identity lapsed (section 2 of the protocol): identify again, once.
    if (!retried && this.identity && generation === this.generation && (failure.code === "DEVICE_UNKNOWN" || failure.code === "DEVICE_UNVERIFIED")) {
      await this.postIdentify(this.identity);
      return this.http<T>(method, path, body, true);
    }
    throw failure;
  }

  // --- identity ----------------------------------------------------------------------------

  /** Who uses this device (anonymous without userId). Another person than before: everything of
   * the previous one is forgotten first and this install gets a new device id. Connects. */
  async identify(identity: Identity = {}): Promise<EndUser> {
    await this.loaded;
    const previous = this.identity?.userId ?? this.saved.userId ?? null;
    if (previous !== null && previous !== (identity.userId ?? null)) await this.forget();
    this.identity = identity;
    const user = await this.postIdentify(identity);
    if (this.saved.userId !== (identity.userId ?? null)) {
      this.saved = { ...this.saved, userId: identity.userId ?? null };
      await saveJson(this.storage, this.key(`${this.deviceId}:state`), this.saved);
    }
    // An anonymous visitor who signed in: the socket's handshake said who it was, so open anew.
    if (this.socket && this.connectedAs !== (identity.userId ?? null)) this.closeSocket();
    this.connect();
    return user;
  }

  private async postIdentify(identity: Identity): Promise<EndUser> {
    const body: Record<string, unknown> = { platform: this.options.platform };
    const fields: [keyof Identity, string][] = [
      ["userId", "user_id"],
      ["userHash", "user_hash"],
      ["name", "name"],
      ["email", "email"],
      ["attributes", "attributes"],
      ["locale", "locale"],
      ["timezone", "timezone"],
      ["appVersion", "app_version"],
      ["pushToken", "push_token"],
    ];
    for (const [from, to] of fields) if (identity[from] !== undefined) body[to] = identity[from];
    const generation = this.generation;
    const answer = await this.http<{ device_id: string; user: EndUser }>("POST", "/v1/identify", body, true);
    if (generation === this.generation) this.user = answer.user;
    return answer.user;
  }

  /** Forget the current person (memory and storage), withdraw this device's push address, and
   * disconnect; call identify() for the next one. This install gets a new device id, so nothing
   * of theirs can follow. */
  async logout(): Promise<void> {
    await this.loaded;
    await this.forget();
    this.identity = null;
    this.setState("idle");
  }

  private async forget(): Promise<void> {
    if (this.identity || this.saved.userId !== null) {
      // The next person's phone must not get the previous person's notifications: withdraw
      // this device's push address (best effort; an older server has no such route).
      await this.http("DELETE", "/v1/push-token", undefined, true).catch(() => undefined);
    }
    this.generation += 1;
    this.closeSocket();
    const gone = new ReplyHQError("LOGGED_OUT", "the person changed before this message was sent");
    for (const waiter of this.waiters.values()) waiter.reject(gone);
    this.waiters.clear();
    this.outbox = [];
    this.cursors.clear();
    this.syncs.clear();
    this.unread.clear();
    this.unreadSeq.clear();
    this.pendingReads.clear();
    this.user = null;
    await saveJson(this.storage, this.key(`${this.deviceId}:outbox`), null);
    await saveJson(this.storage, this.key(`${this.deviceId}:state`), null);
    this.saved = { userId: null, cursors: {}, baselined: false };
    this.deviceId = `sdk-${newId()}`;
    await saveJson(this.storage, this.key("device"), this.deviceId);
    this.emitUnread();
  }

  // --- conversations -----------------------------------------------------------------------

  /** The person's conversations, newest activity first; also sets the unread count. The first
   * call on a device counts the existing history as seen (read it with history()). */
  async conversations(): Promise<Conversation[]> {
    const generation = this.generation;
    const page = await this.http<{ items: Conversation[] }>("GET", "/v1/conversations?limit=100");
    if (generation !== this.generation) return page.items;
    for (const conversation of page.items) {
      if (!this.cursors.has(conversation.id)) {
        const lastSeq = this.saved.baselined ? 0 : conversation.last_seq;
        this.cursors.set(conversation.id, { lastSeq, early: new Map() });
        if (lastSeq < conversation.last_seq && this.caughtUp) void this.sync(conversation.id);
      }
      this.unread.set(conversation.id, conversation.unread_count);
      this.unreadSeq.set(conversation.id, Math.max(conversation.last_seq, this.unreadSeq.get(conversation.id) ?? 0));
    }
    if (!this.saved.baselined) this.saved = { ...this.saved, baselined: true };
    this.saveState();
    this.emitUnread();
    return page.items;
  }

  /** A new conversation; with `body` or `attachmentIds` (uploads made with upload() and no
   * conversation), its first message (idempotent: a retry creates nothing). */
  async startConversation(options: { subject?: string; body?: string; attachmentIds?: string[] } = {}): Promise<Conversation> {
    const clientMsgId = newId();
    const body: Record<string, unknown> = {};
    if (options.subject !== undefined) body.subject = options.subject;
    if (options.body !== undefined || options.attachmentIds?.length) {
      body.first_message = { body: options.body ?? "", client_msg_id: clientMsgId, ...attachments(options.attachmentIds) };
    }
    const conversation = await this.http<Conversation>("POST", "/v1/conversations", body);
    if (!this.cursors.has(conversation.id)) this.cursors.set(conversation.id, { lastSeq: 0, early: new Map() });
    this.unread.set(conversation.id, 0);
    this.unreadSeq.set(conversation.id, conversation.last_seq);
    if (conversation.last_message) this.accept(conversation.last_message);
    return conversation;
  }

  /** An authenticated call to the server's device API (what this SDK does not wrap, e.g. a
   * conversation's rating or the visitor's page): this device's headers, typed errors, and one
   * identify again when the device's identity lapsed. */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.http<T>(method, path, body);
  }

  // --- attachments (docs/attachments.md) ------------------------------------------------------

  /** Upload a file or image (a browser's File or Blob, or bytes; at most the server's
   * ATTACHMENT_MAX_BYTES, 10 MB by default, of an allowed type as found in its bytes) to one of
   * the person's conversations, or with no `conversationId` for a conversation not started yet.
   * Then send it: send(conversationId, body, { attachmentIds: [attachment.id] }), or as a new
   * conversation's first message (send(NEW_CONVERSATION, ...) or startConversation()). Refusals
   * reject with the server's code (ATTACHMENT_TOO_LARGE, UNSUPPORTED_ATTACHMENT_TYPE, ...). */
  upload(data: UploadData, options: { filename?: string; conversationId?: string } = {}): Promise<Attachment> {
    const filename = options.filename ?? (data as { name?: unknown }).name;
    const query = typeof filename === "string" ? `?filename=${encodeURIComponent(filename)}` : "";
    const conversation = options.conversationId && options.conversationId !== NEW_CONVERSATION ? options.conversationId : null;
    const path = conversation ? `/v1/conversations/${encodeURIComponent(conversation)}/attachments` : "/v1/attachments";
    return this.http<Attachment>("POST", path + query, new Bytes(data));
  }

  /** An attachment of the person's with fresh signed URLs (a message's expire after minutes). */
  attachment(id: string): Promise<Attachment> {
    return this.http<Attachment>("GET", `/v1/attachments/${encodeURIComponent(id)}`);
  }

  /** An attachment's `url` or `thumbnail_url` (a path on the server) as a full address. */
  fileUrl(path: string): string {
    return path.startsWith("/") ? this.options.url + path : path;
  }

  /** Earlier messages (scroll-back): the `limit` just before `beforeSeq` (default: the latest). */
  async history(conversationId: string, options: { beforeSeq?: number; limit?: number } = {}): Promise<Message[]> {
    const before = options.beforeSeq ?? 2 ** 31 - 1;
    const limit = options.limit ?? 50;
    const page = await this.http<{ items: Message[] }>(
      "GET",
      `/v1/conversations/${encodeURIComponent(conversationId)}/messages?before_seq=${before}&limit=${limit}`,
    );
    return page.items;
  }

  /** Unread messages in one conversation (from conversations(), then live). */
  unreadIn(conversationId: string): number {
    return this.unread.get(conversationId) ?? 0;
  }

  get unreadCount(): number {
    let total = 0;
    for (const count of this.unread.values()) total += count;
    return total;
  }

  private emitUnread(): void {
    const total = this.unreadCount;
    if (total === this.lastUnread) return;
    this.lastUnread = total;
    this.emit("unread", total);
  }

  // --- real time ---------------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", state);
  }

  private closeSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.caughtUp = false;
    if (socket) {
      socket.removeAllListeners();
      socket.disconnect();
    }
  }

  private connect(): void {
    if (this.socket) return; // the same person, e.g. a profile update: the socket stays
    const generation = this.generation;
    this.connectedAs = this.identity?.userId ?? null;
    const socket = io(this.options.url, {
      path: "/socket.io",
      transports: ["websocket"],
      autoConnect: !this.offline,
      reconnectionDelay: this.options.reconnectionDelayMs,
      reconnectionDelayMax: this.options.reconnectionDelayMaxMs,
      timeout: this.options.ackTimeoutMs,
      auth: (cb) =>
        cb({
          app_id: this.options.appId,
          api_key: this.options.sdkKey,
          device_id: this.deviceId,
          ...(this.identity?.userId ? { user_id: this.identity.userId } : {}),
          ...(this.identity?.userHash ? { user_hash: this.identity.userHash } : {}),
        }),
    });
    this.socket = socket;
    const mine = () => generation === this.generation && this.socket === socket;
    let refusals = 0;
    this.setState(this.offline ? "offline" : "connecting");
    socket.on("connect", () => {
      if (!mine()) return;
      refusals = 0;
      this.setState("connected");
      void this.catchUp(socket);
    });
    socket.on("disconnect", (reason) => {
      if (!mine()) return;
      this.caughtUp = false;
      this.setState(this.offline ? "offline" : "reconnecting");
      // Closed by the server (access changed): the next handshake says whether we are welcome.
      if (reason === "io server disconnect") setTimeout(() => mine() && !this.offline && socket.connect(), 1000);
    });
    socket.on("connect_error", (error: Error & { data?: { code?: string; error?: string } }) => {
      if (!mine()) return;
      const code = error.data?.code;
      if (!code) return; // the transport failed: socket.io-client retries by itself
      const failure = new ReplyHQError(code, error.data?.error ?? error.message);
      if (code === "DEVICE_UNKNOWN" || code === "DEVICE_UNVERIFIED") {
        const identity = this.identity;
        if (identity && refusals++ < 3) {
          void this.postIdentify(identity).then(
            () => mine() && socket.connect(),
            () => mine() && setTimeout(() => mine() && socket.connect(), this.backoff(refusals)),
          );
          return;
        }
      }
      if (IDENTITY_REFUSALS.has(code) || code === "DEVICE_UNKNOWN" || code === "DEVICE_UNVERIFIED") {
        socket.disconnect(); // no retry can help until the app identifies again
        this.socket = null;
        this.setState("blocked");
        this.emit("error", failure);
        return;
      }
      // Refused for a passing reason (rate limit, busy database): refusals are not retried by
      // socket.io-client itself.
      refusals += 1;
      this.setState("reconnecting");
      setTimeout(() => mine() && !this.offline && !socket.connected && socket.connect(), this.backoff(refusals));
    });
    socket.on("message:new", (data: { message: Message }) => {
      if (mine()) this.accept(data.message);
    });
    socket.on("resync", () => {
      if (mine()) void this.catchUp(socket);
    });
    socket.on("conversation:updated", (data: { conversation: ConversationState }) => {
      if (!mine()) return;
      const conversation = data.conversation;
      const cursor = this.cursors.get(conversation.id);
      if (!cursor) this.cursors.set(conversation.id, { lastSeq: 0, early: new Map() });
      if (!cursor || (conversation.last_seq > cursor.lastSeq && !cursor.early.has(conversation.last_seq))) {
        void this.sync(conversation.id);
      }
      this.emit("conversation", conversation);
    });
    socket.on("typing", (data: TypingEvent) => {
      if (mine()) this.emit("typing", data);
    });
    socket.on("read", (data: ReadEvent) => {
      if (mine()) this.emit("read", data);
    });
    socket.on("messenger:settings", (data: Record<string, unknown>) => {
      if (mine()) this.emit("settings", data);
    });
  }

  /** The device's network went away (false) or came back (true): e.g. the browser's
   * online/offline events or React Native's NetInfo. A dead network can leave a socket looking
   * open for long; offline, the socket is closed at once (sends queue) and reopened when back. */
  setOnline(online: boolean): void {
    if (this.offline === !online) return;
    this.offline = !online;
    const socket = this.socket;
    if (!online) {
      this.caughtUp = false;
      if (socket?.connected) socket.disconnect();
      if (this.state !== "idle" && this.state !== "blocked" && this.state !== "closed") this.setState("offline");
    } else if (socket && !socket.connected) {
      this.setState("reconnecting");
      socket.connect();
    }
  }

  private backoff(attempt: number): number {
    const base = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
    return base * (0.5 + Math.random());
  }

  private async call<T>(event: string, payload: unknown, socket = this.socket): Promise<Ack<T>> {
    if (!socket?.connected) return { ok: false, code: "TIMEOUT", error: "not connected" };
    try {
      return (await socket.timeout(this.options.ackTimeoutMs).emitWithAck(event, payload)) as Ack<T>;
    } catch (error) {
      return { ok: false, code: "TIMEOUT", error: String(error) };
    }
  }

  /** After every (re)connect and on resync: what happened meanwhile, then the queued sends. */
  private async catchUp(socket: Socket): Promise<void> {
    const generation = this.generation;
    const ids = new Set([...this.cursors.keys(), ...this.outbox.map((item) => item.conversation_id)]);
    ids.delete(NEW_CONVERSATION);
    await Promise.all([...ids].map((id) => this.sync(id)));
    if (generation !== this.generation || this.socket !== socket || !socket.connected) return;
    this.caughtUp = true;
    for (const [id, seq] of this.pendingReads) void this.read(id, seq);
    this.pendingReads.clear();
    void this.flush();
  }

  /** Everything after the last delivered seq of a conversation (one sync at a time each). */
  sync(conversationId: string): Promise<void> {
    const running = this.syncs.get(conversationId);
    if (running) return running.then(() => this.sync(conversationId));
    const generation = this.generation;
    const task = (async () => {
      for (;;) {
        const cursor = this.cursor(conversationId);
        const ack = await this.call<{ messages: Message[]; has_more: boolean }>("sync", {
          conversation_id: conversationId,
          after_seq: cursor.lastSeq,
          limit: SYNC_LIMIT,
        });
        if (generation !== this.generation) return;
        if (!ack.ok) {
          if (!TRANSIENT.has(ack.code)) this.emit("error", fromBody(ack, null));
          return; // transient: the next connect syncs again
        }
        for (const message of ack.messages) this.accept(message);
        if (!ack.has_more || ack.messages.length === 0) return;
      }
    })().finally(() => {
      if (this.syncs.get(conversationId) === task) this.syncs.delete(conversationId);
    });
    this.syncs.set(conversationId, task);
    return task;
  }

  private cursor(conversationId: string): Cursor {
    let cursor = this.cursors.get(conversationId);
    if (!cursor) this.cursors.set(conversationId, (cursor = { lastSeq: 0, early: new Map() }));
    return cursor;
  }

  /** Exactly once, in order (protocol section 5): duplicates dropped, early ones kept aside
   * until the gap is filled by sync. */
  private accept(message: Message): void {
    const cursor = this.cursor(message.conversation_id);
    if (message.seq <= cursor.lastSeq || cursor.early.has(message.seq)) return;
    cursor.early.set(message.seq, message);
    let next = cursor.early.get(cursor.lastSeq + 1);
    while (next) {
      cursor.early.delete(next.seq);
      cursor.lastSeq = next.seq;
      this.deliver(next);
      next = cursor.early.get(cursor.lastSeq + 1);
    }
    this.saveState();
    if (cursor.early.size > 0) void this.sync(message.conversation_id);
  }

  private deliver(message: Message): void {
    const id = message.conversation_id;
    // Events (closed/reopened lines) are nobody's unread message; seqs the server's count
    // already covered are not counted again.
    if (message.sender !== "user" && message.kind !== "event" && message.seq > (this.unreadSeq.get(id) ?? 0)) {
      this.unread.set(id, (this.unread.get(id) ?? 0) + 1);
    }
    this.emit("message", message);
    for (const push of this.iterators) push(message);
    this.emitUnread();
  }

  /** Every message delivered from now on, in order, until close() (or the loop breaks). */
  messages(): AsyncIterableIterator<Message> {
    const buffered: Message[] = [];
    let wake: ((result: IteratorResult<Message>) => void) | null = null;
    let done = false;
    const push = (message: Message | null) => {
      if (message === null) {
        done = true;
        this.iterators.delete(push);
      } else buffered.push(message);
      if (wake) {
        const resolve = wake;
        wake = null;
        const next = buffered.shift();
        resolve(next ? { value: next, done: false } : { value: undefined, done: true });
      }
    };
    this.iterators.add(push);
    const iterator: AsyncIterableIterator<Message> = {
      next: () => {
        const next = buffered.shift();
        if (next) return Promise.resolve({ value: next, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (wake = resolve));
      },
      return: () => {
        push(null);
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  // --- sending -----------------------------------------------------------------------------

  /** Queue a message (kept in storage while offline); resolves with the stored message once the
   * server has it, exactly once whatever the retries. Rejects when the server refuses it. With
   * `attachmentIds` (uploads, see upload()) the body may be empty. */
  async send(conversationId: string, body: string, options: { clientMsgId?: string; attachmentIds?: string[] } = {}): Promise<Message> {
    await this.loaded;
    // A retry of a refused message may reuse its client_msg_id: the server stores it once.
    const item: OutgoingMessage = {
      conversation_id: conversationId,
      body,
      client_msg_id: options.clientMsgId ?? newId(),
      ...attachments(options.attachmentIds),
    };
    const stored = new Promise<Message>((resolve, reject) => this.waiters.set(item.client_msg_id, { resolve, reject }));
    this.outbox.push(item);
    await this.saveOutbox();
    void this.flush();
    return stored;
  }

  /** Messages queued and not yet acknowledged by the server. */
  get pending(): readonly OutgoingMessage[] {
    return this.outbox;
  }

  private flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const generation = this.generation;
    const run = async () => {
      let attempt = 0;
      while (this.outbox.length > 0 && this.caughtUp && generation === this.generation) {
        const item = this.outbox[0]!;
        const ack =
          item.conversation_id === NEW_CONVERSATION ? await this.create(item) : await this.call<{ message: Message; created: boolean }>("message:send", item);
        if (generation !== this.generation) return;
        if (!ack.ok && TRANSIENT.has(ack.code)) {
          // Lost or refused for now: the same client_msg_id again later, never a duplicate.
          attempt += 1;
          await sleep(ack.retry_after ? ack.retry_after * 1000 : this.backoff(attempt));
          continue;
        }
        attempt = 0;
        if (this.outbox[0] === item) this.outbox.shift();
        await this.saveOutbox();
        const waiter = this.waiters.get(item.client_msg_id);
        this.waiters.delete(item.client_msg_id);
        if (ack.ok) {
          this.accept(ack.message);
          waiter?.resolve(ack.message);
        } else {
          const error = fromBody(ack, null);
          waiter?.reject(error);
          this.emit("failed", item, error);
        }
      }
    };
    this.flushing = run().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  /** A message queued to NEW_CONVERSATION: the conversation is created with it over HTTP. */
  private async create(item: OutgoingMessage): Promise<Ack<{ message: Message }>> {
    const generation = this.generation;
    let conversation: Conversation;
    try {
      conversation = await this.http<Conversation>("POST", "/v1/conversations", {
        first_message: { body: item.body, client_msg_id: item.client_msg_id, ...attachments(item.attachment_ids) },
      });
    } catch (error) {
      const failure = error instanceof ReplyHQError ? error : new ReplyHQError("NETWORK_ERROR", String(error));
      return { ok: false, code: failure.transient ? "SERVICE_UNAVAILABLE" : failure.code, error: failure.message };
    }
    if (generation !== this.generation) return { ok: false, code: "LOGGED_OUT", error: "the person changed" };
    if (!conversation.last_message) return { ok: false, code: "SERVICE_UNAVAILABLE", error: "no message stored" };
    if (!this.cursors.has(conversation.id)) this.cursors.set(conversation.id, { lastSeq: 0, early: new Map() });
    this.unread.set(conversation.id, 0);
    this.unreadSeq.set(conversation.id, conversation.last_seq);
    // Whatever else was written to the new conversation meanwhile follows it there.
    for (const queued of this.outbox) if (queued.conversation_id === NEW_CONVERSATION) queued.conversation_id = conversation.id;
    await this.saveOutbox();
    this.emit("started", conversation, item.client_msg_id);
    return { ok: true, message: conversation.last_message };
  }

  // --- typing, read ------------------------------------------------------------------------

  /** Tell the other side the user is typing (true) or stopped (false). Not queued: false when
   * it could not be said now. */
  async typing(conversationId: string, typing = true): Promise<boolean> {
    const ack = await this.call("typing", { conversation_id: conversationId, typing });
    return ack.ok;
  }

  /** The user has seen the conversation up to `seq` (default: the last delivered message).
   * Offline, it is sent after the next connect. Resets the conversation's unread count. */
  async read(conversationId: string, seq?: number): Promise<void> {
    const upTo = seq ?? this.cursor(conversationId).lastSeq;
    this.unread.set(conversationId, 0);
    this.unreadSeq.set(conversationId, Math.max(upTo, this.unreadSeq.get(conversationId) ?? 0));
    this.emitUnread();
    if (upTo <= 0) return;
    if (!this.caughtUp) {
      this.pendingReads.set(conversationId, Math.max(upTo, this.pendingReads.get(conversationId) ?? 0));
      return;
    }
    const ack = await this.call<{ seq: number }>("read", { conversation_id: conversationId, seq: upTo });
    if (!ack.ok) {
      if (TRANSIENT.has(ack.code)) this.pendingReads.set(conversationId, upTo);
      else throw fromBody(ack, null);
    }
  }

  // --- optional features (feature-detected) --------------------------------------------------

  private async optional(route: string, body: unknown): Promise<Feature> {
    if (this.missing.has(route)) return { supported: false };
    try {
      await this.http("POST", route, body);
      return { supported: true };
    } catch (error) {
      if (error instanceof ReplyHQError && (error.status === 404 || error.status === 405)) {
        this.missing.add(route); // an older server: do not ask again
        return { supported: false };
      }
      throw error;
    }
  }

  /** Where this device can be pushed to (POST /v1/push-token), when the server has it. */
  registerPushToken(registration: { provider: "fcm" | "apns" | "webpush"; token?: string; subscription?: unknown }): Promise<Feature> {
    return this.optional("/v1/push-token", registration);
  }

  /** Record something the user did (POST /v1/events), when the server has it. */
  track(name: string, properties?: Record<string, unknown>): Promise<Feature> {
    const event: Record<string, unknown> = { name, timestamp: new Date().toISOString() };
    if (properties !== undefined) event.properties = properties;
    return this.optional("/v1/events", { events: [event] });
  }

  /** Disconnect and end the message iterators; the queue stays in storage for next time. */
  close(): void {
    const cursors: Record<string, number> = {};
    for (const [id, cursor] of this.cursors) cursors[id] = cursor.lastSeq;
    void saveJson(this.storage, this.key(`${this.deviceId}:state`), { ...this.saved, cursors });
    this.generation += 1;
    this.closeSocket();
    for (const push of [...this.iterators]) push(null);
    this.setState("closed");
  }
}
