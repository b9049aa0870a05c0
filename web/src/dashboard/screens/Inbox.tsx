import { Fragment, useCallback, useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore, type KeyboardEvent, type UIEvent } from "react";
import type { Assignee, EndUser, InboxConversation, Label, Me, Message, PushLogItem, SavedReply } from "../../api/types";
import type { InboxFilter } from "../../shared/inbox";
import type { PendingMessage } from "../../shared/timeline";
import { type Api, errorText } from "../api";
import { displayName, OnlineDot, when } from "../components";
import type { Desk } from "../desk";
import { goUp, navigate } from "../router";
import { ItemLine, LabelChips, ProfileHistory, LabelFilter, placeItems, ReplyPicker, renderReply, shortcutMatches, useLabels, useSavedReplies } from "../workspace";
import { SearchBox, SearchResults } from "../search";
import { VisitorPanel } from "./VisitorPanel";

const FILTERS: { id: InboxFilter; label: string }[] = [
  { id: "open", label: "Open" },
  { id: "mine", label: "Mine" },
  { id: "unassigned", label: "Unassigned" },
  { id: "closed", label: "Closed" },
];

// On a phone one pane shows at a time (dashboard.css): the list, a conversation, or its profile.
function pane(conversationId: string | null, profile: boolean): string {
  return conversationId === null ? "pane-list" : profile ? "pane-profile" : "pane-conversation";
}

export function InboxScreen({ desk, api, me, conversationId, profile = false, at }: { desk: Desk; api: Api; me: Me; conversationId: string | null; profile?: boolean; at?: number | undefined }) {
  const state = useSyncExternalStore(desk.subscribe, desk.getState);
  const team = useAssignees(api, me);
  const labels = useLabels(api);
  const [q, setQ] = useState("");

  useEffect(() => {
    void desk.select(conversationId);
  }, [desk, conversationId]);

  const selected = conversationId ? desk.conversation(conversationId) : undefined;
  return (
    <div className={`inbox ${pane(conversationId, profile)}`}>
      <section className="list" aria-label="Conversations">
        <SearchBox q={q} onChange={setQ} />
        {q.trim() ? (
          <SearchResults api={api} me={me} q={q} team={team} labels={labels} conversationId={conversationId} />
        ) : (
          <InboxList desk={desk} me={me} labels={labels} conversationId={conversationId} />
        )}
      </section>
      {selected ? (
        <>
          <ConversationView key={selected.id} desk={desk} api={api} me={me} conversation={selected} team={team} labels={labels} at={at} />
          <ProfilePanel api={api} me={me} conversation={selected} online={state.online[selected.end_user_id]} />
        </>
      ) : (
        <section className="empty">
          <p className="muted">{conversationId ? "Loading the conversation…" : "Choose a conversation."}</p>
        </section>
      )}
    </div>
  );
}

function InboxList({ desk, me, labels, conversationId }: { desk: Desk; me: Me; labels: Label[]; conversationId: string | null }) {
  const state = useSyncExternalStore(desk.subscribe, desk.getState);
  return (
    <>
        <div className="filters" role="tablist">
          {FILTERS.map((f) => (
            <button key={f.id} role="tab" aria-selected={state.filter === f.id} className={state.filter === f.id ? "active" : ""} data-testid={`filter-${f.id}`} onClick={() => void desk.setFilter(f.id)}>
              {f.label}
            </button>
          ))}
          <LabelFilter desk={desk} labels={labels} value={state.label} />
        </div>
        <ul data-testid="inbox">
          {state.inbox.map((c) => (
            <InboxItem key={c.id} me={me} conversation={c} active={c.id === conversationId} online={state.online[c.end_user_id]} typing={Boolean(state.typing[c.id])} />
          ))}
        </ul>
        {state.inboxLoading && <p className="muted pad">Loading…</p>}
        {!state.inboxLoading && state.inbox.length === 0 && <p className="muted pad">Nothing here.</p>}
        {state.nextCursor && (
          <button className="link pad" onClick={() => void desk.loadInbox(true)}>
            Load more
          </button>
        )}
    </>
  );
}

/** Who conversations can be assigned to (active members), for the picker and the header. */
function useAssignees(api: Api, me: Me): Assignee[] {
  const [team, setTeam] = useState<Assignee[]>([]);
  useEffect(() => {
    if (!me.permissions.includes("conversations:write")) return;
    void api.GET("/admin/api/conversations/assignees").then(({ data }) => data && setTeam(data));
  }, [api, me]);
  return team;
}

/** "You: " only before the viewer's own messages; a colleague's carry their name. */
function previewOf(c: InboxConversation, me: Me): string {
  const last = c.last_message;
  if (!last) return "";
  if (last.sender !== "agent") return last.body;
  const mine = last.author.id === (me.staff?.id ?? me.app_id);
  return `${mine ? "You" : last.author.name || "Agent"}: ${last.body}`;
}

function InboxItem({ me, conversation: c, active, online, typing }: { me: Me; conversation: InboxConversation; active: boolean; online: boolean | undefined; typing: boolean }) {
  const preview = typing ? "typing…" : previewOf(c, me);
  return (
    <li>
      <a
        href={`/dashboard/inbox/${c.id}`}
        className={active ? "item active" : "item"}
        data-testid="inbox-item"
        data-id={c.id}
        data-unread={c.unread_count}
        onClick={(e) => {
          e.preventDefault();
          navigate({ screen: "inbox", conversationId: c.id });
        }}
      >
        <span className="who">
          <OnlineDot online={online} />
          <strong data-testid="inbox-name">{displayName(c.user)}</strong>
          <time>{when(c.last_activity_at)}</time>
        </span>
        {c.subject && (
          <span className="subject" data-testid="inbox-subject">
            {c.subject}
          </span>
        )}
        <span className="preview-row">
          <span className={typing ? "preview typing" : "preview"} data-testid="inbox-preview">
            {preview}
          </span>
          {c.unread_count > 0 && (
            <span className="badge" data-testid="unread-badge">
              {c.unread_count}
            </span>
          )}
          {c.status === "closed" && <span className="tag">closed</span>}
        </span>
      </a>
    </li>
  );
}

function draftKey(me: Me, conversationId: string): string {
  return `replyhq:dashboard:draft:${me.staff?.id ?? me.app_id}:${conversationId}`;
}

function ConversationView({ desk, api, me, conversation, team, labels, at }: { desk: Desk; api: Api; me: Me; conversation: InboxConversation; team: Assignee[]; labels: Label[]; at: number | undefined }) {
  const state = useSyncExternalStore(desk.subscribe, desk.getState);
  const replies = useSavedReplies(api, me);
  const [noteMode, setNoteMode] = useState(false);
  const timeline = state.timelines[conversation.id];
  const messages = timeline?.messages ?? [];
  const pending = timeline?.pending ?? [];
  const typing = state.typing[conversation.id];
  const userRead = state.userRead[conversation.id] ?? 0;
  const lastAgent = [...messages].reverse().find((m) => m.sender === "agent");
  const [draft, setDraft] = useState(() => localStorage.getItem(draftKey(me, conversation.id)) ?? "");
  const [error, setError] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const firstSeq = timeline?.firstSeq ?? 0;
  const previousHeight = useRef(0);
  const can = (p: string) => me.permissions.includes(p);
  const placed = placeItems(state.items[conversation.id] ?? [], messages);

  useEffect(() => {
    if (draft) localStorage.setItem(draftKey(me, conversation.id), draft);
    else localStorage.removeItem(draftKey(me, conversation.id));
  }, [draft, me, conversation.id]);

  // New messages at the bottom keep the view pinned there; older ones loaded at the top keep
  // the reader's place.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (stick.current) el.scrollTop = el.scrollHeight;
    else if (previousHeight.current) el.scrollTop += el.scrollHeight - previousHeight.current;
    previousHeight.current = el.scrollHeight;
  }, [messages.length, pending.length, typing, firstSeq]);

  // Opened at a message (a search result): earlier pages until it is held, then it is shown.
  const [found, setFound] = useState<number | null>(null);
  const loaded = messages.length > 0;
  useEffect(() => {
    if (!at || !loaded) return;
    if (firstSeq > at) {
      void desk.loadOlder(conversation.id);
      return;
    }
    const element = scroller.current?.querySelector(`[data-seq="${at}"]`);
    if (!element) return;
    stick.current = false;
    element.scrollIntoView({ block: "center" });
    setFound(at);
  }, [desk, conversation.id, at, firstSeq, loaded]);

  const onScroll = (event: UIEvent<HTMLDivElement>) => {
    const el = event.currentTarget;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    previousHeight.current = el.scrollHeight;
    if (el.scrollTop < 40 && firstSeq > 1) void desk.loadOlder(conversation.id);
  };

  const matches = shortcutMatches(replies, draft);
  const pick = async (reply: SavedReply) => {
    try {
      setDraft(await renderReply(api, reply, conversation.id));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const submit = () => {
    if (!draft.trim()) return;
    stick.current = true;
    if (noteMode) {
      const body = draft;
      setDraft("");
      void desk.addNote(conversation.id, body).then((failed) => {
        if (failed) {
          setError(failed);
          setDraft(body);
        }
      });
      return;
    }
    desk.send(conversation.id, draft);
    setDraft("");
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if ((event.key === "Enter" || event.key === "Tab") && matches.length > 0 && !event.shiftKey) {
      event.preventDefault(); // `/shortcut` + Enter or Tab inserts the first saved reply
      void pick(matches[0]!);
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  const change = async (patch: { status?: "open" | "closed"; assignee_id?: string | null }) => {
    setError(await desk.update(conversation.id, patch));
  };
  const assignee = conversation.assignee_id;
  const member = team.find((s) => s.id === assignee);
  const assigneeName = assignee === me.staff?.id ? "you" : member ? member.name || member.email : "a colleague";
  const showProfile = () => navigate({ screen: "inbox", conversationId: conversation.id, profile: true });

  return (
    <section className="conversation" aria-label="Conversation" data-testid="conversation" data-id={conversation.id}>
      <header className="conversation-head">
        <button className="link phone-only" data-testid="back-to-list" aria-label="Back to the conversations" onClick={() => goUp({ screen: "inbox", conversationId: null })}>
          ‹ Back
        </button>
        <div className="title">
          <h2 data-testid="conversation-title">{displayName(conversation.user)}</h2>
          {conversation.subject && (
            <p className="subject" data-testid="conversation-subject">
              {conversation.subject}
            </p>
          )}
          <span className="muted" data-testid="conversation-status" data-status={conversation.status}>
            {conversation.status === "open" ? "Open" : "Closed"}
            <span data-testid="conversation-assignee">{assignee ? ` · assigned to ${assigneeName}` : " · unassigned"}</span>
          </span>
        </div>
        <LabelChips desk={desk} conversation={conversation} labels={labels} canWrite={can("conversations:write")} />
        <button className="phone-only" data-testid="show-profile" onClick={showProfile}>
          Profile
        </button>
        {can("conversations:write") && (
          <div className="actions" data-testid="conversation-actions">
            {team.length > 0 ? (
              <select aria-label="Assignee" data-testid="assignee" value={assignee ?? ""} onChange={(e) => void change({ assignee_id: e.target.value || null })}>
                <option value="">Unassigned</option>
                {team.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name || s.email}
                  </option>
                ))}
              </select>
            ) : (
              assignee !== me.staff?.id && (
                <button onClick={() => void change({ assignee_id: me.staff?.id ?? null })} data-testid="assign-me">
                  Assign to me
                </button>
              )
            )}
            {conversation.status === "open" ? (
              <button data-testid="close" onClick={() => void change({ status: "closed" })}>
                Close
              </button>
            ) : (
              <button data-testid="reopen" onClick={() => void change({ status: "open" })}>
                Reopen
              </button>
            )}
          </div>
        )}
      </header>
      {error && <p className="error pad">{error}</p>}
      <div className="messages" ref={scroller} onScroll={onScroll} data-testid="messages">
        {firstSeq > 1 && (
          <button className="link older" onClick={() => void desk.loadOlder(conversation.id)}>
            Earlier messages
          </button>
        )}
        {placed.before.map((item) => (
          <ItemLine key={item.id} item={item} />
        ))}
        {messages.map((m) => (
          <Fragment key={m.seq}>
            <Bubble message={m} seen={m === lastAgent && userRead >= m.seq} found={m.seq === found} />
            {(placed.after[m.seq] ?? []).map((item) => (
              <ItemLine key={item.id} item={item} />
            ))}
          </Fragment>
        ))}
        {pending.map((p) => (
          <PendingBubble key={p.client_msg_id} pending={p} onRetry={() => desk.retry(conversation.id, p.client_msg_id)} onDiscard={() => desk.discard(conversation.id, p.client_msg_id)} />
        ))}
        {typing && (
          <p className="typing" data-testid="typing">
            {typing.name || (typing.type === "user" ? displayName(conversation.user) : "A colleague")} is typing…
          </p>
        )}
      </div>
      {can("messages:write") && (
        <div className={noteMode ? "composer note-mode" : "composer"}>
          <ReplyPicker matches={matches} onPick={(r) => void pick(r)} />
          <button className={noteMode ? "note-toggle active" : "note-toggle"} data-testid="note-toggle" aria-pressed={noteMode} onClick={() => setNoteMode(!noteMode)} title="A private note: only your team sees it">
            Note
          </button>
          <textarea
            data-testid="composer"
            placeholder={noteMode ? "A private note for your team… (@name mentions)" : "Reply… (Enter sends, Shift+Enter for a new line, / for saved replies)"}
            value={draft}
            rows={3}
            onChange={(e) => {
              setDraft(e.target.value);
              if (!noteMode) desk.typing(conversation.id, e.target.value.length > 0);
            }}
            onKeyDown={onKeyDown}
            aria-label="Reply"
          />
          {!noteMode && (
            <label className="attach" title="Send a file or image">
              Attach
              <input
                type="file"
                data-testid="attach-input"
                hidden
                onChange={(e) => {
                  const file = e.target.files?.[0];
                  e.target.value = "";
                  if (file) void desk.sendFile(conversation.id, file).then(setError);
                }}
              />
            </label>
          )}
          <button className="primary" data-testid="send" onClick={submit} disabled={!draft.trim()}>
            {noteMode ? "Add note" : "Send"}
          </button>
        </div>
      )}
    </section>
  );
}

/** Images inline by their thumbnail (a click opens the file), other files as download links. */
function Attachments({ message }: { message: Message }) {
  if (!message.attachments?.length) return null;
  return (
    <div className="attachments">
      {message.attachments.map((a) =>
        a.kind === "image" && a.thumbnail_url ? (
          <a key={a.id} href={a.url} target="_blank" rel="noopener noreferrer" data-testid="attachment">
            <img src={a.thumbnail_url} alt={a.filename} data-testid="attachment-image" width={a.width && a.height && a.width < a.height ? undefined : 240} />
          </a>
        ) : (
          <a key={a.id} href={a.url} download={a.filename} data-testid="attachment">
            📎 {a.filename} ({Math.max(1, Math.round(a.size / 1024))} KB)
          </a>
        ),
      )}
    </div>
  );
}

function Bubble({ message, seen, found = false }: { message: Message; seen: boolean; found?: boolean }) {
  const side = message.sender === "user" ? "theirs" : message.sender === "agent" ? "mine" : "system";
  return (
    <div
      className={`bubble ${side}${found ? " found" : ""}`}
      data-testid="message"
      data-seq={message.seq}
      data-sender={message.sender}
      data-client-msg-id={message.client_msg_id}
      data-found={found ? "yes" : undefined}
    >
      <span className="author">{message.author.name || (message.sender === "user" ? "Visitor" : "Agent")}</span>
      {/* body_html is the server's sanitised rendering (nh3): the only HTML we insert. */}
      <div className="body" dangerouslySetInnerHTML={{ __html: message.body_html }} />
      <Attachments message={message} />
      <span className="meta">
        {when(message.created_at)}
        {seen && (
          <span className="seen" data-testid="seen">
            {" "}
            · Seen
          </span>
        )}
      </span>
    </div>
  );
}

function PendingBubble({ pending, onRetry, onDiscard }: { pending: PendingMessage; onRetry: () => void; onDiscard: () => void }) {
  return (
    <div className="bubble mine pending" data-testid="pending" data-status={pending.status}>
      <div className="body plain">{pending.body}</div>
      <span className="meta">
        {pending.status === "sending" ? (
          "Sending…"
        ) : (
          <>
            Not sent{pending.error ? `: ${pending.error}` : ""}{" "}
            <button className="link" onClick={onRetry}>
              Retry
            </button>{" "}
            <button className="link" onClick={onDiscard}>
              Delete
            </button>
          </>
        )}
      </span>
    </div>
  );
}

function ProfilePanel({ api, me, conversation, online }: { api: Api; me: Me; conversation: InboxConversation; online: boolean | undefined }) {
  const [profile, setProfile] = useState<EndUser | null>(null);
  const canSeeAttributes = me.permissions.includes("users:read");
  useEffect(() => {
    setProfile(null);
    if (!canSeeAttributes) return;
    void api
      .GET("/admin/api/users/{end_user_id}", { params: { path: { end_user_id: conversation.end_user_id } } })
      .then(({ data }) => data && setProfile(data));
  }, [api, conversation.end_user_id, canSeeAttributes]);
  const user = conversation.user;
  return (
    <aside className="profile" aria-label="End user" data-testid="profile">
      <button className="link phone-only" data-testid="back-to-conversation" onClick={() => goUp({ screen: "inbox", conversationId: conversation.id })}>
        ‹ Back to the conversation
      </button>
      <h3>
        <OnlineDot online={online} /> <span data-testid="profile-name">{displayName(user)}</span>
      </h3>
      <dl>
        <dt>Status</dt>
        <dd>{online ? "Online now" : "Offline"}</dd>
        <dt>E-mail</dt>
        <dd>{user.email ?? "—"}</dd>
        <dt>User id</dt>
        <dd>{user.user_id ?? "anonymous visitor"}</dd>
        <dt>Identity</dt>
        <dd>{user.anonymous ? "not identified" : user.verified ? "verified" : "not verified"}</dd>
      </dl>
      <VisitorPanel api={api} conversation={conversation} />
      {canSeeAttributes && (
        <>
          <h4>Attributes</h4>
          {profile && Object.keys(profile.attributes).length > 0 ? (
            <dl data-testid="attributes">
              {Object.entries(profile.attributes).map(([key, value]) => (
                <div key={key} className="attribute">
                  <dt>{key}</dt>
                  <dd>{typeof value === "string" ? value : JSON.stringify(value)}</dd>
                </div>
              ))}
            </dl>
          ) : (
            <p className="muted">{profile ? "None." : "Loading…"}</p>
          )}
          <ProfileHistory api={api} conversation={conversation} />
          <PushLog api={api} endUserId={conversation.end_user_id} canTest={me.permissions.includes("push:test")} />
        </>
      )}
    </aside>
  );
}

const DECISION: Record<string, string> = {
  sent: "sent",
  read: "not sent: read",
  online: "not sent: online",
  held: "held: online",
  no_device: "not sent: no device",
  quiet_hours: "waiting: quiet hours",
  rate_limited: "not sent: hourly limit",
  collapsed: "waiting: collapsed",
};

/** The person's notifications: each decision and why, each delivery with the provider's answer
 * verbatim; OWNERs and ADMINs send a test push and read the answer here. */
function PushLog({ api, endUserId, canTest }: { api: Api; endUserId: string; canTest: boolean }) {
  const [items, setItems] = useState<PushLogItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    const { data } = await api.GET("/admin/api/users/{end_user_id}/push-log", { params: { path: { end_user_id: endUserId } } });
    if (data) setItems(data.items);
    return data?.items ?? [];
  }, [api, endUserId]);
  useEffect(() => {
    setItems(null);
    void load();
  }, [load]);
  const test = async () => {
    setError(null);
    const { data, error: failure } = await api.POST("/admin/api/users/{end_user_id}/test-push", {
      params: { path: { end_user_id: endUserId } },
      body: { title: "Test notification", body: "This is a test push from ReplyHQ." },
    });
    if (!data) return setError(errorText(failure, "The test push could not be sent."));
    // The deliveries start pending; the answers arrive within seconds.
    for (let i = 0; i < 30; i++) {
      const rows = await load();
      if (!rows.some((r) => r.parent_id !== null && (r.status === "pending" || r.status === "retrying"))) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  return (
    <section data-testid="push-log">
      <h4>Notifications</h4>
      {canTest && (
        <button className="secondary" data-testid="test-push" onClick={() => void test()}>
          Send test push
        </button>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {items === null ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted">None yet.</p>
      ) : (
        <ul className="push-log">
          {items.map((item) =>
            item.parent_id === null ? (
              <li key={item.id} data-testid="push-decision" data-decision={item.decision}>
                <strong>
                  {item.channel === "email" ? "e-mail" : item.channel === "test" ? "test push" : DECISION[item.decision] ?? item.decision}
                </strong>{" "}
                <span className="muted">
                  {when(item.created_at)} · {item.reason}
                </span>
              </li>
            ) : (
              <li key={item.id} className="delivery" data-testid="push-delivery" data-status={item.status ?? ""}>
                {item.provider} → {item.device_id}: {item.status}
                {item.latency_ms !== null && ` in ${item.latency_ms} ms`}
                {item.provider_response && <code data-testid="provider-response">{item.provider_response}</code>}
              </li>
            ),
          )}
        </ul>
      )}
    </section>
  );
}
