// What the messenger's view shows, kept over @replyhq/sdk: the SDK is the engine (identity, the
// socket, the offline queue with client_msg_id, exactly-once ordered delivery, sync on reconnect,
// typing, read receipts, unread counts); this file only turns its events into snapshots for
// React and adds what is the page's business (its online/offline signal, the tab's visibility,
// the identity the page gave, the words for screen readers).
import {
  type ConnectionState as SdkState,
  type Conversation as SdkConversation,
  defaultStorage,
  NEW_CONVERSATION,
  ReplyHQ,
  ReplyHQError,
} from "@replyhq/sdk";
import type { Conversation, EndUser, Message } from "../api/types";
import { withPeerReads } from "../shared/inbox";
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
import { blockedBy, type Blocked, originRefused, tellDeveloper } from "./blocked";

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

/** How the view names the connection. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

/** The conversation being written before the server has created it. */
export const NEW = NEW_CONVERSATION;

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

function isOnline(): boolean {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}

function viewState(state: SdkState): ConnectionState {
  if (state === "connected") return "connected";
  if (state === "reconnecting") return isOnline() ? "reconnecting" : "offline";
  if (state === "offline" || state === "blocked" || state === "closed") return "offline";
  return isOnline() ? "connecting" : "offline";
}

function identityKey(appId: string): string {
  return `replyhq:${appId}:identity`;
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

/** The server's words without the SDK's "CODE: " prefix. */
function serverText(error: ReplyHQError): string {
  const prefix = `${error.code}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/** One's own messages the history already holds are no longer pending. */
function settled(timeline: Timeline): Timeline {
  const stored = new Set(timeline.messages.map((m) => m.client_msg_id));
  const pending = timeline.pending.filter((p) => !stored.has(p.client_msg_id));
  return pending.length === timeline.pending.length ? timeline : { ...timeline, pending };
}

export class Messenger {
  /** The engine: one @replyhq/sdk client, its queue and read positions in localStorage. */
  readonly client: ReplyHQ;
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
  private identity: Identity | null;
  private typingTimers: Record<string, ReturnType<typeof setTimeout>> = {};
  private generation = 0; // bumped on every identity change: late answers for the old person are dropped
  /** Conversations whose history is shown (live messages apply to them). */
  private loaded = new Set<string>();
  /** Messages delivered while a conversation's history is on its way (merged when it lands). */
  private buffers = new Map<string, Message[]>();

  constructor(private readonly config: Config) {
    this.client = new ReplyHQ({ url: config.baseUrl, appId: config.appId, sdkKey: config.apiKey, platform: "web", storage: defaultStorage() });
    this.identity = load<Identity>(identityKey(config.appId));
    const client = this.client;
    client.on("message", (message) => this.receive(message as Message));
    client.on("started", (conversation, clientMsgId) => this.started(conversation, clientMsgId));
    client.on("conversation", (conversation) => this.updated(conversation));
    client.on("typing", ({ conversation_id, who, typing }) => {
      if (who.type !== "agent") return;
      clearTimeout(this.typingTimers[conversation_id]);
      if (typing) this.typingTimers[conversation_id] = setTimeout(() => this.setTyping(conversation_id, null), 8000);
      this.setTyping(conversation_id, typing ? who.name || "Support" : null);
    });
    client.on("read", ({ conversation_id, who, seq }) => {
      if (who.type !== "agent") return;
      const before = this.snapshot.agentRead[conversation_id] ?? 0;
      if (seq > before) this.set({ agentRead: { ...this.snapshot.agentRead, [conversation_id]: seq } });
    });
    client.on("unread", () => this.set({}));
    client.on("state", (state) => {
      this.set(state === "connected" ? { state: "connected", error: null } : { state: viewState(state), typing: {} });
      // Back after a disconnect: the SDK syncs the messages; the list (statuses, new
      // conversations, unread counts) is read again too.
      if (state === "connected" && this.snapshot.ready) void this.loadConversations();
    });
    client.on("failed", (item, error) => {
      this.setTimeline(item.conversation_id, failPending(this.timeline(item.conversation_id), item.client_msg_id, serverText(error)));
    });
    client.on("error", (error) => {
      // A handshake refused for good (e.g. the app now requires verified users).
      if (client.state === "blocked") this.block(error.code, serverText(error));
    });
    // The browser's own network signal: a dead network can leave a websocket looking open.
    client.setOnline(isOnline());
    window.addEventListener("offline", () => client.setOnline(false));
    window.addEventListener("online", () => client.setOnline(true));
    document.addEventListener("visibilitychange", () => {
      const current = this.snapshot.current;
      if (current && current !== NEW && document.visibilityState === "visible") this.markRead(current);
    });
    void this.showQueued();
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
    const next = { ...this.snapshot, ...change };
    // Unread counts are the SDK's: per conversation for the list, the total for the badge.
    let changed = false;
    const conversations = next.conversations.map((c) => {
      const count = this.client.unreadIn(c.id);
      if (count === c.unread_count) return c;
      changed = true;
      return { ...c, unread_count: count };
    });
    if (changed) next.conversations = conversations;
    next.unread = this.client.unreadCount;
    this.snapshot = next;
    this.listeners.forEach((l) => l());
    if (next.unread !== this.lastUnread) {
      this.lastUnread = next.unread;
      this.unreadListeners.forEach((cb) => cb(next.unread));
    }
  }

  private timeline(id: string): Timeline {
    return this.snapshot.timelines[id] ?? emptyTimeline;
  }

  private setTimeline(id: string, timeline: Timeline): void {
    this.set({ timelines: { ...this.snapshot.timelines, [id]: timeline } });
  }

  /** A server path (an attachment's signed URL) as an address this page can load. */
  fileUrl(path: string): string {
    return this.client.fileUrl(path);
  }

  /** Upload a file and send it in the open conversation, or as the first message of a new one
   * (docs/attachments.md); the error, or null. The message comes back through the SDK's events. */
  async sendFile(file: File): Promise<string | null> {
    const conversationId = this.snapshot.current ?? NEW;
    try {
      const attachment = await this.client.upload(file, { conversationId });
      if (conversationId === NEW) this.set({ current: NEW });
      await this.client.send(conversationId, "", { attachmentIds: [attachment.id] });
      return null;
    } catch (error) {
      return error instanceof ReplyHQError ? serverText(error) : "The file was not sent.";
    }
  }

  /** For the UI layer's own calls (visitor context, ratings): this device's authenticated API. */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.client.request<T>(method, path, body);
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
      // Another person on this device: nothing of the previous one may remain (the SDK forgets
      // their queue and read positions and takes a new device id).
      if (previous !== null && previous !== (identity.user_id ?? null)) this.forget();
      this.identity = identity;
      save(identityKey(this.config.appId), identity.user_id ? identity : null);
      await this.start();
    });
  }

  logout(): Promise<void> {
    return this.serial(async () => {
      this.forget();
      this.identity = null;
      save(identityKey(this.config.appId), null);
      // The next person on this browser starts as a brand-new visitor (a new device id).
      await this.client.logout();
      await this.start();
    });
  }

  /** Drop everything shown of the current person. */
  private forget(): void {
    this.generation += 1;
    this.loaded.clear();
    this.buffers.clear();
    this.set({ ready: false, user: null, conversations: [], current: null, timelines: {}, typing: {}, agentRead: {} });
  }

  private async start(): Promise<void> {
    const generation = this.generation;
    const identity = this.identity;
    let user: EndUser;
    try {
      user = (await this.client.identify({
        userId: identity?.user_id,
        userHash: identity?.user_hash,
        name: identity?.name,
        email: identity?.email,
        attributes: identity?.attributes,
        locale: navigator.language?.slice(0, 35),
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      })) as EndUser;
    } catch (caught) {
      if (generation !== this.generation) return;
      const error = caught instanceof ReplyHQError ? caught : new ReplyHQError("NETWORK_ERROR", String(caught));
      if (!error.transient && error.status !== null) {
        // Refused (e.g. the app requires verified users): wait for the page to identify.
        this.block(error.code, serverText(error));
        return;
      }
      if (error.code === "NETWORK_ERROR" && (await originRefused(this.config.baseUrl, this.config.appId))) {
        if (generation === this.generation) this.block("ORIGIN_REFUSED", "");
        return; // nothing changes until the server's ALLOWED_ORIGINS does (and the page reloads)
      }
      this.set({ error: "Could not reach support; trying again…", state: isOnline() ? "reconnecting" : "offline" });
      setTimeout(() => {
        if (generation === this.generation && !this.snapshot.ready) void this.serial(() => this.start());
      }, 3000);
      return;
    }
    if (generation !== this.generation) return;
    this.set({ user, error: null, blocked: null, ready: true, state: viewState(this.client.state) });
    await this.showQueued();
    await this.loadConversations();
    const current = this.snapshot.current;
    if (current && current !== NEW && !this.loaded.has(current)) void this.openConversation(current);
  }

  /** Messages written on an earlier page and not yet sent (the SDK's queue): shown at once, even
   * before the server answers, in the conversation they belong to. */
  private async showQueued(): Promise<void> {
    const generation = this.generation;
    await this.client.device(); // the queue is read from storage
    if (generation !== this.generation) return;
    const queued = this.client.pending;
    for (const item of queued) this.showPending(item.conversation_id, item.client_msg_id, item.body);
    if (queued.length > 0 && this.snapshot.current === null) this.set({ current: queued[0]!.conversation_id });
  }

  /** The messenger cannot be used here: say so to the person in plain words, and to the
   * developer in the console with what to change. */
  private block(code: string, text: string): void {
    const blocked = blockedBy(code);
    tellDeveloper(blocked, code, text, this.config.baseUrl);
    this.set({ blocked, error: null, state: "offline" });
  }

  // --- conversations ---------------------------------------------------------------------------

  async loadConversations(): Promise<void> {
    const generation = this.generation;
    let items: SdkConversation[];
    try {
      items = await this.client.conversations();
    } catch {
      return; // shown again after the next (re)connect
    }
    if (generation !== this.generation) return;
    const conversations = items as unknown as Conversation[];
    this.set({ conversations, agentRead: withPeerReads(this.snapshot.agentRead, conversations) });
  }

  async openConversation(id: string | null): Promise<void> {
    this.set({ current: id });
    if (id === null || id === NEW) return;
    await this.loadHistory(id);
    this.markRead(id);
  }

  /** The newest page of a conversation's history, merged with what arrived live meanwhile and
   * with what is still being sent; from then on live messages apply to it. */
  private async loadHistory(id: string): Promise<void> {
    if (!this.loaded.has(id)) {
      if (this.buffers.has(id)) return; // already on its way
      const generation = this.generation;
      this.buffers.set(id, []);
      let page: Message[];
      try {
        page = (await this.client.history(id, { limit: HISTORY_PAGE })) as Message[];
      } catch {
        this.buffers.delete(id);
        return;
      }
      if (generation !== this.generation) return;
      const live = this.buffers.get(id) ?? [];
      this.buffers.delete(id);
      this.loaded.add(id);
      const current = this.timeline(id);
      // Keep anything that arrived live meanwhile, and what is still being sent.
      const merged = applyMessages({ ...fromLatest(page), pending: current.pending }, [...current.messages, ...live]);
      this.setTimeline(id, settled(merged.timeline));
      if (merged.gap) void this.refill(id);
    }
  }

  /** A hole in what is shown (a message delivered before the history that holds the ones before
   * it): the newest page of history fills it. */
  private async refill(id: string): Promise<void> {
    const generation = this.generation;
    try {
      const page = (await this.client.history(id, { limit: HISTORY_PAGE })) as Message[];
      if (generation === this.generation) this.setTimeline(id, settled(applyMessages(this.timeline(id), page).timeline));
    } catch {
      // the next message or reconnect tries again
    }
  }

  async loadOlder(id: string): Promise<void> {
    const timeline = this.timeline(id);
    if (timeline.firstSeq <= 1) return;
    try {
      const page = (await this.client.history(id, { beforeSeq: timeline.firstSeq, limit: HISTORY_PAGE })) as Message[];
      this.setTimeline(id, prependHistory(this.timeline(id), page));
    } catch {
      // the button stays: the person can try again
    }
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
    if (!this.isViewing(id) || !this.loaded.has(id)) return;
    const seq = this.timeline(id).lastSeq;
    if (seq === 0 || !this.snapshot.conversations.some((c) => c.id === id)) return;
    // The SDK resets the count at once and sends the receipt (after the next connect if offline).
    void this.client.read(id, seq).catch(() => undefined);
    this.set({});
  }

  // --- sending ---------------------------------------------------------------------------------

  send(body: string): void {
    const text = body.trim();
    if (!text) return;
    const conversationId = this.snapshot.current ?? NEW;
    const clientMsgId = newClientMsgId();
    if (conversationId === NEW) this.set({ current: NEW });
    this.showPending(conversationId, clientMsgId, text);
    // Queued by the SDK (kept in storage while offline); a refusal comes as its "failed" event.
    void this.client.send(conversationId, text, { clientMsgId }).catch(() => undefined);
    this.typing(false);
  }

  retry(conversationId: string, clientMsgId: string): void {
    const pending = this.timeline(conversationId).pending.find((p) => p.client_msg_id === clientMsgId);
    if (!pending) return;
    this.setTimeline(conversationId, retryPending(this.timeline(conversationId), clientMsgId));
    void this.client.send(conversationId, pending.body, { clientMsgId }).catch(() => undefined);
  }

  discard(conversationId: string, clientMsgId: string): void {
    this.setTimeline(conversationId, dropPending(this.timeline(conversationId), clientMsgId));
  }

  private showPending(conversationId: string, clientMsgId: string, body: string): void {
    const timeline = addPending(this.timeline(conversationId), {
      client_msg_id: clientMsgId,
      body,
      created_at: new Date().toISOString(),
      status: "sending",
    });
    this.setTimeline(conversationId, timeline);
  }

  /** The first message created its conversation: the draft becomes that conversation. */
  private started(created: SdkConversation, _clientMsgId: string): void {
    const conversation = created as unknown as Conversation;
    const id = conversation.id;
    const draft = this.timeline(NEW);
    const timelines = { ...this.snapshot.timelines };
    delete timelines[NEW];
    const existing = timelines[id] ?? emptyTimeline;
    timelines[id] = { ...existing, pending: [...existing.pending, ...draft.pending.filter((p) => !existing.pending.some((e) => e.client_msg_id === p.client_msg_id))] };
    const known = this.snapshot.conversations.find((c) => c.id === id);
    const conversations = [known ?? conversation, ...this.snapshot.conversations.filter((c) => c.id !== id)];
    this.set({ timelines, conversations, current: this.snapshot.current === NEW ? id : this.snapshot.current });
    // Its messages may have been delivered already (its creation is announced on the socket too).
    void this.loadHistory(id).then(() => this.markRead(id));
  }

  // --- typing ----------------------------------------------------------------------------------

  private typingSent = false;
  private typingStop: ReturnType<typeof setTimeout> | null = null;

  typing(active: boolean): void {
    const id = this.snapshot.current;
    if (!id || id === NEW || this.client.state !== "connected") return;
    if (this.typingStop) clearTimeout(this.typingStop);
    if (active) this.typingStop = setTimeout(() => this.typing(false), 3000);
    if (active === this.typingSent) return;
    this.typingSent = active;
    void this.client.typing(id, active);
  }

  // --- real time -------------------------------------------------------------------------------

  private updated(conversation: { id: string; status: "open" | "closed"; assignee_id: string | null; last_activity_at: string }): void {
    const before = this.snapshot.conversations.find((c) => c.id === conversation.id);
    if (!before) {
      void this.loadConversations();
      return;
    }
    if (before.status === "open" && conversation.status === "closed") this.announce(CLOSED_TEXT);
    this.set({
      conversations: this.snapshot.conversations.map((c) =>
        c.id === conversation.id
          ? { ...c, status: conversation.status, assignee_id: conversation.assignee_id, last_activity_at: conversation.last_activity_at }
          : c,
      ),
    });
  }

  /** Read out by screen readers (an aria-live region); a repeated text still counts as new. */
  private announce(text: string): void {
    const same = this.snapshot.announcement.replace(/\u00a0$/, "") === text;
    this.set({ announcement: same && !this.snapshot.announcement.endsWith("\u00a0") ? `${text}\u00a0` : text });
  }

  private setTyping(conversationId: string, name: string | null): void {
    this.set({ typing: { ...this.snapshot.typing, [conversationId]: name } });
  }

  /** Each message once and in order, from the SDK (live, synced after a reconnect, or the
   * acknowledgement of one's own send). */
  private receive(message: Message): void {
    const id = message.conversation_id;
    const known = this.snapshot.conversations.find((c) => c.id === id);
    if (!known) {
      void this.loadConversations();
    } else if (message.seq > known.last_seq) {
      // A closed/reopened event (kind "event") is shown but is nobody's unread message.
      if (message.sender !== "user" && message.kind !== "event") this.announce(`${message.author.name || "Support"}: ${message.body}`);
      this.set({
        conversations: this.snapshot.conversations.map((c) =>
          c.id === id ? { ...c, last_seq: message.seq, last_message: message, last_activity_at: message.created_at } : c,
        ),
      });
    }
    if (message.sender === "agent") this.setTyping(id, null);
    this.buffers.get(id)?.push(message);
    if (!this.loaded.has(id)) {
      // Not shown yet (history loads when it is); one's own message is no longer pending.
      const timeline = this.snapshot.timelines[id];
      if (timeline?.pending.some((p) => p.client_msg_id === message.client_msg_id)) this.setTimeline(id, dropPending(timeline, message.client_msg_id));
      return;
    }
    const applied = applyMessages(this.timeline(id), [message]);
    this.setTimeline(id, applied.timeline);
    if (applied.gap) void this.refill(id);
    if (applied.added.length > 0) this.markRead(id);
  }
}
