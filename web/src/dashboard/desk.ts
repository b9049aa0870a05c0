// The agent's live desk: inbox, open conversations, presence, typing and the outbox, kept
// current by the /admin socket and caught up with `sync` after every reconnect.
import type { InboxConversation, Me, Message, ServerEvents, TimelineItem, Who } from "../api/types";
import { applyMessage, applyUpdate, type InboxFilter, markRead, matches, sortInbox, upsert, withPeerReads } from "../shared/inbox";
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
import { type Api, errorText } from "./api";
import type { SessionStore } from "./session";

export interface DeskState {
  connection: ConnectionState;
  filter: InboxFilter;
  inbox: InboxConversation[];
  inboxLoading: boolean;
  nextCursor: string | null;
  selected: string | null;
  timelines: Record<string, Timeline>;
  online: Record<string, boolean>; // end user id → online
  typing: Record<string, Who | null>; // conversation id → who is typing (end user or colleague)
  userRead: Record<string, number>; // conversation id → the end user's read marker
  // The agents' workspace: staff-only timeline items (notes, events) per conversation, and the
  // label the inbox is filtered by.
  items: Record<string, TimelineItem[]>;
  label: string | null;
  mentioned: { conversation_id: string; note: TimelineItem } | null;
}

const PAGE = 30;
const TOKEN_CODES = new Set(["TOKEN_EXPIRED", "TOKEN_STALE", "INVALID_TOKEN", "AUTH_REQUIRED"]);
const HISTORY = 50;

export class Desk {
  private state: DeskState = {
    connection: "connecting",
    filter: "open",
    inbox: [],
    inboxLoading: true,
    nextCursor: null,
    selected: null,
    timelines: {},
    online: {},
    typing: {},
    userRead: {},
    items: {},
    label: null,
    mentioned: null,
  };
  private listeners = new Set<() => void>();
  private socket: LiveSocket | null = null;
  // Screens' own listeners (onboarding, the test console), kept across start() and reconnects.
  private extra: Array<{ event: keyof ServerEvents; handler: (...args: never[]) => void }> = [];
  private connectHooks = new Set<(socket: LiveSocket) => void>();
  private unfollow: (() => void) | null = null;
  private readonly outbox: Outbox<Message>;
  private typingTimers: Record<string, ReturnType<typeof setTimeout>> = {};
  private syncing = new Set<string>();
  private inboxRequest = 0;
  /** Conversations known beyond the current filter (the selected one, for instance). */
  private known: Record<string, InboxConversation> = {};
  /** Told of every message received live, with its conversation (desktop notifications). */
  onIncoming: ((message: Message, conversation: InboxConversation | undefined) => void) | null = null;

  constructor(
    private readonly api: Api,
    private readonly sessions: SessionStore,
    private me: Me,
    private readonly onAccessChanged: () => void,
  ) {
    this.outbox = new Outbox<Message>((item) => this.deliver(item), {
      onStored: (item, message) => {
        this.receive(message);
        this.setTimeline(message.conversation_id, dropPending(this.timeline(message.conversation_id), item.client_msg_id));
      },
      onRefused: (item, _code, error) =>
        this.setTimeline(item.conversation_id, failPending(this.timeline(item.conversation_id), item.client_msg_id, error)),
    });
  }

  // --- store -----------------------------------------------------------------------------------

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): DeskState => this.state;

  private set(change: Partial<DeskState>): void {
    this.state = { ...this.state, ...change };
    this.listeners.forEach((l) => l());
  }

  private timeline(id: string): Timeline {
    return this.state.timelines[id] ?? emptyTimeline;
  }

  private setTimeline(id: string, timeline: Timeline): void {
    this.set({ timelines: { ...this.state.timelines, [id]: timeline } });
  }

  setMe(me: Me): void {
    this.me = me;
  }

  conversation(id: string): InboxConversation | undefined {
    return this.state.inbox.find((c) => c.id === id) ?? this.known[id];
  }

  // --- inbox -----------------------------------------------------------------------------------

  private query(filter: InboxFilter) {
    switch (filter) {
      case "open":
        return { status: "open" as const };
      case "closed":
        return { status: "closed" as const };
      case "mine":
        return { status: "open" as const, assignee: "me" };
      case "unassigned":
        return { status: "open" as const, assignee: "none" };
    }
  }

  async setFilter(filter: InboxFilter): Promise<void> {
    this.set({ filter, inbox: [], inboxLoading: true, nextCursor: null });
    await this.loadInbox();
  }

  async loadInbox(more = false): Promise<void> {
    const ticket = ++this.inboxRequest;
    const filter = this.state.filter;
    const cursor = more ? this.state.nextCursor : null;
    const { data } = await this.api.GET("/admin/api/conversations", {
      params: {
        query: {
          ...this.query(filter),
          limit: PAGE,
          ...(cursor ? { cursor } : {}),
          ...(this.state.label ? { label: this.state.label } : {}),
        },
      },
    });
    if (ticket !== this.inboxRequest || !data) {
      if (ticket === this.inboxRequest) this.set({ inboxLoading: false });
      return;
    }
    let inbox = more ? [...this.state.inbox] : [];
    for (const item of data.items) inbox = upsert(inbox, this.remember(item));
    this.set({
      inbox: sortInbox(inbox),
      nextCursor: data.next_cursor,
      inboxLoading: false,
      userRead: withPeerReads(this.state.userRead, data.items),
    });
    void this.loadPresence(data.items.map((c) => c.end_user_id));
  }

  private remember(conversation: InboxConversation): InboxConversation {
    this.known[conversation.id] = conversation;
    return conversation;
  }

  private async loadPresence(userIds: string[]): Promise<void> {
    const unknown = [...new Set(userIds)].filter((id) => !(id in this.state.online));
    if (unknown.length === 0) return;
    const { data } = await this.api.GET("/admin/api/presence", { params: { query: { user_id: unknown } } });
    if (data) this.set({ online: { ...data.users, ...this.state.online } });
  }

  private async fetchConversation(id: string): Promise<InboxConversation | null> {
    const { data } = await this.api.GET("/admin/api/conversations/{conversation_id}", {
      params: { path: { conversation_id: id } },
    });
    if (!data) return null;
    this.remember(data);
    this.set({ userRead: withPeerReads(this.state.userRead, [data]) });
    void this.loadPresence([data.end_user_id]);
    return data;
  }

  /** Put a conversation in the list if it belongs to the current filter, or take it out: one
   * closed while it is being read leaves Open at once (it stays on screen, as `known`). */
  private place(conversation: InboxConversation): void {
    const label = this.state.label;
    const belongs =
      matches(conversation, this.state.filter, this.me.staff?.id ?? null) &&
      (label === null || (conversation.label_ids ?? []).includes(label));
    const without = this.state.inbox.filter((c) => c.id !== conversation.id);
    this.set({ inbox: belongs ? upsert(without, conversation) : without });
  }

  // --- a conversation --------------------------------------------------------------------------

  async select(id: string | null): Promise<void> {
    this.set({ selected: id });
    if (!id) return;
    if (!this.conversation(id)) {
      const found = await this.fetchConversation(id);
      if (found) this.place(found);
    }
    if (!(id in this.state.items)) void this.loadItems(id);
    if (this.timeline(id).lastSeq === 0) {
      const { data } = await this.api.GET("/admin/api/conversations/{conversation_id}/messages", {
        params: { path: { conversation_id: id }, query: { before_seq: 2 ** 31 - 1, limit: HISTORY } },
      });
      if (data) {
        const current = this.timeline(id);
        this.setTimeline(id, applyMessages({ ...fromLatest(data.items), pending: current.pending }, current.messages).timeline);
        void this.sync(id); // anything that landed between the page and now
      }
    }
    this.read(id);
  }

  async loadOlder(id: string): Promise<void> {
    const timeline = this.timeline(id);
    if (timeline.firstSeq <= 1) return;
    const { data } = await this.api.GET("/admin/api/conversations/{conversation_id}/messages", {
      params: { path: { conversation_id: id }, query: { before_seq: timeline.firstSeq, limit: HISTORY } },
    });
    if (data) this.setTimeline(id, prependHistory(this.timeline(id), data.items));
  }

  private viewing(id: string): boolean {
    return this.state.selected === id && document.visibilityState !== "hidden";
  }

  /** The agent has seen everything shown in the selected conversation. */
  read(id: string): void {
    if (!this.viewing(id)) return;
    const seq = this.timeline(id).lastSeq;
    const conversation = this.conversation(id);
    if (seq === 0 || !conversation) return;
    if (conversation.unread_count > 0) {
      this.set({ inbox: markRead(this.state.inbox, id) });
      this.known[id] = { ...conversation, unread_count: 0 };
    }
    const socket = this.socket;
    if (socket?.connected) {
      void request(socket, (s) => s.timeout(ACK_TIMEOUT_MS).emitWithAck("read", { conversation_id: id, seq }));
    } else {
      void this.api.POST("/admin/api/conversations/{conversation_id}/read", {
        params: { path: { conversation_id: id } },
        body: { seq },
      });
    }
  }

  async update(id: string, change: { status?: "open" | "closed"; assignee_id?: string | null }): Promise<string | null> {
    const { data, error } = await this.api.PATCH("/admin/api/conversations/{conversation_id}", {
      params: { path: { conversation_id: id } },
      body: change,
    });
    if (!data) return (error as { error?: string } | undefined)?.error ?? "Not saved.";
    this.place(this.remember({ ...data, unread_count: this.conversation(id)?.unread_count ?? data.unread_count }));
    return null;
  }

  // --- sending ---------------------------------------------------------------------------------

  send(conversationId: string, body: string): void {
    const text = body.trim();
    if (!text) return;
    const item = { conversation_id: conversationId, body: text, client_msg_id: newClientMsgId() };
    this.setTimeline(
      conversationId,
      addPending(this.timeline(conversationId), { ...item, created_at: new Date().toISOString(), status: "sending" }),
    );
    this.outbox.enqueue(item);
    this.typing(conversationId, false);
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

  private async deliver(item: OutboxItem): Promise<SendResult<Message>> {
    const socket = this.socket;
    if (!socket) return { kind: "retry" as const, error: "not connected" };
    return sendResult(
      await request(socket, (s) =>
        s.timeout(ACK_TIMEOUT_MS).emitWithAck("message:send", {
          conversation_id: item.conversation_id,
          body: item.body,
          client_msg_id: item.client_msg_id,
        }),
      ),
    );
  }

  private typingState: Record<string, boolean> = {};
  private typingStops: Record<string, ReturnType<typeof setTimeout>> = {};

  typing(conversationId: string, active: boolean): void {
    const socket = this.socket;
    if (!socket?.connected) return;
    clearTimeout(this.typingStops[conversationId]);
    if (active) this.typingStops[conversationId] = setTimeout(() => this.typing(conversationId, false), 3000);
    if ((this.typingState[conversationId] ?? false) === active) return;
    this.typingState[conversationId] = active;
    socket.emit("typing", { conversation_id: conversationId, typing: active }, () => undefined);
  }

  // --- real time -------------------------------------------------------------------------------

  /** Listen to a server event on the /admin socket (before or after it opens). */
  listen<E extends keyof ServerEvents>(event: E, handler: ServerEvents[E]): () => void {
    const entry = { event, handler: handler as (...args: never[]) => void };
    this.extra.push(entry);
    this.socket?.on(event, handler as never);
    return () => {
      this.extra = this.extra.filter((e) => e !== entry);
      this.socket?.off(event, handler as never);
    };
  }

  /** Run `hook` with the socket at every (re)connect, and now if it is connected. */
  whenConnected(hook: (socket: LiveSocket) => void): () => void {
    this.connectHooks.add(hook);
    if (this.socket?.connected) hook(this.socket);
    return () => this.connectHooks.delete(hook);
  }

  get liveSocket(): LiveSocket | null {
    return this.socket;
  }

  start(): void {
    void this.loadInbox();
    const socket = openSocket("", "/admin", (cb) => {
      void this.sessions.accessToken().then((token) => cb({ token }));
    });
    this.socket = socket;
    for (const { event, handler } of this.extra) socket.on(event, handler as never);
    socket.on("connect", () => {
      this.set({ connection: "connected" });
      this.connectHooks.forEach((hook) => hook(socket));
      void this.catchUp().then(() => this.outbox.setOnline(true));
    });
    socket.on("resync", () => void this.catchUp());
    socket.on("disconnect", (reason) => {
      this.outbox.setOnline(false);
      this.set({ connection: isOnline() ? "reconnecting" : "offline", typing: {} });
      // The server ends sockets whose access changed (role, deactivation): refresh and retry.
      if (reason === "io server disconnect") {
        void this.sessions.refresh().then((session) => {
          if (session) {
            this.onAccessChanged();
            socket.connect();
          }
        });
      }
    });
    socket.on("connect_error", (error) => {
      const code = (error as { data?: { code?: string } }).data?.code;
      this.set({ connection: isOnline() ? "reconnecting" : "offline" });
      if (!code || socket.active) return; // a network failure: the client retries by itself
      if (TOKEN_CODES.has(code)) {
        // Refused at the handshake for the token (expired, or the role changed): renew, retry.
        void this.sessions.refresh().then((session) => {
          if (session) {
            this.onAccessChanged();
            setTimeout(() => socket.connect(), 500);
          }
        });
      } else {
        setTimeout(() => socket.connect(), 5000); // e.g. rate limited: later
      }
    });
    socket.on("message:new", ({ message }) => this.receive(message));
    socket.on("conversation:updated", ({ conversation }) => {
      const current = this.conversation(conversation.id);
      if (!current) {
        void this.fetchConversation(conversation.id).then((found) => found && this.place(found));
        return;
      }
      const [merged] = applyUpdate([current], conversation);
      if (merged) this.place(this.remember(merged));
    });
    socket.on("typing", ({ conversation_id, who, typing }) => {
      if (who.type === "agent" && who.id === this.me.staff?.id) return;
      clearTimeout(this.typingTimers[conversation_id]);
      if (typing) this.typingTimers[conversation_id] = setTimeout(() => this.setTyping(conversation_id, null), 8000);
      this.setTyping(conversation_id, typing ? who : null);
    });
    socket.on("read", ({ conversation_id, who, seq }) => {
      if (who.type === "user") {
        if (seq > (this.state.userRead[conversation_id] ?? 0)) this.set({ userRead: { ...this.state.userRead, [conversation_id]: seq } });
      } else if (who.id === this.me.staff?.id) {
        // Read in another tab of mine.
        const conversation = this.conversation(conversation_id);
        if (conversation && seq >= conversation.last_seq) this.set({ inbox: markRead(this.state.inbox, conversation_id) });
      }
    });
    socket.on("timeline:item", ({ item }) => this.addItem(item));
    socket.on("note:mention", ({ staff_id, conversation_id, note }) => {
      if (staff_id === this.me.staff?.id) this.set({ mentioned: { conversation_id, note } });
    });
    socket.on("conversation:labels", ({ conversation_id, labels }) => {
      const current = this.conversation(conversation_id);
      if (current) this.place(this.remember({ ...current, label_ids: labels.map((l) => l.id) }));
    });
    socket.on("presence", ({ user_id, online }) => {
      if (user_id) this.set({ online: { ...this.state.online, [user_id]: online } });
    });
    const unfollow = followNetwork(socket, () => {
      this.outbox.setOnline(false);
      this.set({ connection: "offline" });
    });
    // Messages that arrived while the tab was hidden count as unread until it is seen again.
    const visible = () => {
      if (document.visibilityState === "visible" && this.state.selected) this.read(this.state.selected);
    };
    document.addEventListener("visibilitychange", visible);
    this.unfollow = () => {
      unfollow();
      document.removeEventListener("visibilitychange", visible);
    };
    if (isOnline()) socket.connect();
    else this.set({ connection: "offline" });
  }

  stop(): void {
    this.unfollow?.();
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
    this.outbox.clear();
  }

  private setTyping(conversationId: string, who: Who | null): void {
    this.set({ typing: { ...this.state.typing, [conversationId]: who } });
  }

  /** After a (re)connect: the inbox as it is now, and every open timeline from its last seq. */
  private async catchUp(): Promise<void> {
    const open = Object.keys(this.state.timelines).filter((id) => this.timeline(id).lastSeq > 0);
    this.set({ online: {} }); // presence may have changed while we were away
    await Promise.all([this.loadInbox(), ...open.map((id) => this.sync(id))]);
    if (this.state.selected) void this.loadPresence([this.conversation(this.state.selected)?.end_user_id ?? ""].filter(Boolean));
  }

  private async sync(id: string): Promise<void> {
    const socket = this.socket;
    if (!socket?.connected || this.syncing.has(id)) return;
    this.syncing.add(id);
    try {
      for (;;) {
        const ack = await request(socket, (s) =>
          s.timeout(ACK_TIMEOUT_MS).emitWithAck("sync", { conversation_id: id, after_seq: this.timeline(id).lastSeq }),
        );
        if (!ack.ok) return;
        this.setTimeline(id, applyMessages(this.timeline(id), ack.messages).timeline);
        if (!ack.has_more) break;
      }
      this.read(id);
    } finally {
      this.syncing.delete(id);
    }
  }

  private receive(message: Message): void {
    const id = message.conversation_id;
    const current = this.conversation(id);
    if (current) {
      const [merged] = applyMessage([current], message, { viewing: this.viewing(id) });
      // Unchanged: the list already shows it (fetched before its event arrived), no news.
      if (merged && merged !== current) {
        this.place(this.remember(merged));
        this.onIncoming?.(message, merged);
      }
    } else {
      void this.fetchConversation(id).then((found) => {
        if (found) this.place(found);
        this.onIncoming?.(message, found ?? undefined);
      });
    }
    if (message.sender === "user") this.setTyping(id, null);
    const timeline = this.state.timelines[id];
    if (!timeline) return; // not opened: its history loads when it is
    const applied = applyMessages(timeline, [message]);
    this.setTimeline(id, applied.timeline);
    if (applied.gap) void this.sync(id);
    if (applied.added.length > 0) this.read(id);
  }

  // --- the agents' workspace (docs/workspace.md) -------------------------------------------------

  async setLabel(label: string | null): Promise<void> {
    this.set({ label, inbox: [], inboxLoading: true, nextCursor: null });
    await this.loadInbox();
  }

  private async loadItems(id: string): Promise<void> {
    const { data } = await this.api.GET("/admin/api/conversations/{conversation_id}/items", {
      params: { path: { conversation_id: id }, query: { limit: 200 } },
    });
    if (data) for (const item of data.items) this.addItem(item);
    if (data && data.items.length === 0) this.set({ items: { ...this.state.items, [id]: [] } });
  }

  private addItem(item: TimelineItem): void {
    const id = item.conversation_id;
    const known = this.state.items[id] ?? [];
    if (known.some((i) => i.id === item.id)) return;
    const next = [...known, item].sort((a, b) => a.after_seq - b.after_seq || a.created_at.localeCompare(b.created_at));
    this.set({ items: { ...this.state.items, [id]: next } });
  }

  /** Upload a file (docs/attachments.md) and send it as a reply; the error sentence, or null. */
  async sendFile(conversationId: string, file: File): Promise<string | null> {
    const uploaded = await this.api.POST("/admin/api/conversations/{conversation_id}/attachments", {
      params: { path: { conversation_id: conversationId }, query: { filename: file.name } },
      body: file as unknown as string,
      bodySerializer: (body: unknown) => body as BodyInit,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    if (!uploaded.data) return errorText(uploaded.error, "The file was not uploaded.");
    const sent = await this.api.POST("/admin/api/conversations/{conversation_id}/messages", {
      params: { path: { conversation_id: conversationId } },
      body: { body: "", client_msg_id: newClientMsgId(), attachment_ids: [uploaded.data.id] },
    });
    if (sent.data) this.receive(sent.data);
    return sent.error ? errorText(sent.error, "The file was not sent.") : null;
  }

  async addNote(conversationId: string, body: string): Promise<string | null> {
    const { data, error } = await this.api.POST("/admin/api/conversations/{conversation_id}/notes", {
      params: { path: { conversation_id: conversationId } },
      body: { body, client_msg_id: newClientMsgId() },
    });
    if (data) this.addItem(data);
    return error ? errorText(error, "The note was not saved.") : null;
  }

  async setConversationLabel(conversationId: string, labelId: string, on: boolean): Promise<string | null> {
    const path = { conversation_id: conversationId, label_id: labelId };
    const { data, error } = on
      ? await this.api.PUT("/admin/api/conversations/{conversation_id}/labels/{label_id}", { params: { path } })
      : await this.api.DELETE("/admin/api/conversations/{conversation_id}/labels/{label_id}", { params: { path } });
    const current = this.conversation(conversationId);
    if (data && current) this.place(this.remember({ ...current, label_ids: data.labels.map((l) => l.id) }));
    return error ? errorText(error, "The label did not change.") : null;
  }
}
