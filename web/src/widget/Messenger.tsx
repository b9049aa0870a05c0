// The messenger's view: a launcher and a chat panel. Text from people (bodies, names) is
// rendered as React text; a stored message's HTML is the server's sanitised `body_html`.
import { useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore, type KeyboardEvent } from "react";
import type { Conversation, Message } from "../api/types";
import type { ConnectionState } from "../shared/socket";
import type { PendingMessage } from "../shared/timeline";
import { BLOCKED_TEXT, type Blocked } from "./blocked";
import { CLOSED_TEXT, type Messenger, NEW } from "./engine";
import { ChatIcon, CloseIcon } from "./icons";

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  connected: "Online",
  reconnecting: "Reconnecting…",
  offline: "Offline: messages will be sent when you are back online",
};

export function MessengerView({ engine }: { engine: Messenger }) {
  const snap = useSyncExternalStore(engine.subscribe, engine.getSnapshot);
  const open = snap.open;
  const launcher = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLElement>(null);

  // Opening moves focus into the panel (the composer when there is one); keyboard users start there.
  useEffect(() => {
    if (!open) return;
    const inside = (selector: string) => panel.current?.querySelector<HTMLElement>(selector);
    (inside("textarea") ?? inside(".rhq-new") ?? inside(".rhq-notice") ?? inside("button"))?.focus();
  }, [open, snap.current, snap.blocked]);

  const close = () => {
    engine.setOpen(false);
    launcher.current?.focus();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLElement>) => {
    if (event.key === "Escape" && !event.nativeEvent.isComposing) {
      event.preventDefault();
      close();
    }
  };

  return (
    <div className="rhq-root" onKeyDown={open ? onKeyDown : undefined}>
      <div className="rhq-sr" role="log" aria-live="polite" aria-atomic="true" data-testid="rhq-announcer">
        {snap.announcement}
      </div>
      {open && (
        <section className="rhq-panel" data-testid="rhq-panel" aria-label="Support chat" ref={panel}>
          <header className="rhq-header">
            {snap.current !== null && snap.conversations.length > 0 && (
              <button className="rhq-icon" data-testid="rhq-back" aria-label="All conversations" onClick={() => void engine.openConversation(null)}>
                ‹
              </button>
            )}
            <div className="rhq-title">
              <strong>Support</strong>
              {!snap.blocked && (
                <span className={`rhq-status rhq-${snap.state}`} data-testid="rhq-status" data-state={snap.state}>
                  {STATE_TEXT[snap.state]}
                </span>
              )}
            </div>
            <button className="rhq-icon" aria-label="Close" onClick={close}>
              <CloseIcon size={18} />
            </button>
          </header>
          {snap.error && !snap.blocked && <p className="rhq-error">{snap.error}</p>}
          {snap.blocked ? (
            <Notice blocked={snap.blocked} />
          ) : snap.current === null && snap.conversations.length > 0 ? (
            <ConversationList conversations={snap.conversations} onOpen={(id) => void engine.openConversation(id)} />
          ) : (
            <Thread engine={engine} conversationId={snap.current ?? NEW} />
          )}
        </section>
      )}
      <button
        className="rhq-launcher"
        data-testid="rhq-launcher"
        ref={launcher}
        aria-label={open ? "Close support chat" : "Open support chat"}
        aria-expanded={open}
        onClick={() => engine.setOpen(!open)}
      >
        {open ? <CloseIcon size={24} /> : <ChatIcon size={28} />}
        {snap.unread > 0 && (
          <span className="rhq-badge" data-testid="rhq-badge">
            {snap.unread > 99 ? "99+" : snap.unread}
          </span>
        )}
      </button>
    </div>
  );
}

function Notice({ blocked }: { blocked: Blocked }) {
  const text = BLOCKED_TEXT[blocked];
  return (
    <div className="rhq-notice" data-testid="rhq-blocked" data-reason={blocked} tabIndex={-1}>
      <strong>{text.title}</strong>
      <p>{text.detail}</p>
    </div>
  );
}

function ConversationList({ conversations, onOpen }: { conversations: Conversation[]; onOpen: (id: string | null) => void }) {
  return (
    <div className="rhq-list">
      <button className="rhq-new" data-testid="rhq-new" onClick={() => onOpen(NEW)}>
        New conversation
      </button>
      <ul>
        {conversations.map((c) => (
          <li key={c.id}>
            <button className="rhq-item" data-testid="rhq-conversation-item" data-id={c.id} onClick={() => onOpen(c.id)}>
              <span className="rhq-preview">{c.last_message?.body ?? c.subject ?? "New conversation"}</span>
              {c.status === "closed" && <span className="rhq-tag">Closed</span>}
              {c.unread_count > 0 && <span className="rhq-count">{c.unread_count}</span>}
              <time>{when(c.last_activity_at)}</time>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Thread({ engine, conversationId }: { engine: Messenger; conversationId: string }) {
  const snap = useSyncExternalStore(engine.subscribe, engine.getSnapshot);
  const timeline = snap.timelines[conversationId];
  const messages = timeline?.messages ?? [];
  const pending = timeline?.pending ?? [];
  const typing = snap.typing[conversationId];
  const closed = snap.conversations.find((c) => c.id === conversationId)?.status === "closed";
  const connected = snap.state === "connected";
  const agentRead = snap.agentRead[conversationId] ?? 0;
  const lastMine = [...messages].reverse().find((m) => m.sender === "user");
  const scroller = useRef<HTMLDivElement>(null);
  const [draft, setDraft] = useState("");

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages.length, pending.length, typing, closed]);

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  const submit = () => {
    if (!draft.trim()) return;
    engine.send(draft);
    setDraft("");
  };

  return (
    <div className="rhq-thread">
      <div className="rhq-messages" ref={scroller} data-testid="rhq-messages">
        {timeline && timeline.firstSeq > 1 && (
          <button className="rhq-older" onClick={() => void engine.loadOlder(conversationId)}>
            Earlier messages
          </button>
        )}
        {messages.length === 0 && pending.length === 0 && <p className="rhq-hint">Ask us anything: we usually answer within minutes.</p>}
        {messages.map((m) => (
          <Bubble key={m.seq} message={m} seen={m === lastMine && agentRead >= m.seq} />
        ))}
        {pending.map((p) => (
          <PendingBubble key={p.client_msg_id} pending={p} connected={connected} onRetry={() => engine.retry(conversationId, p.client_msg_id)} onDiscard={() => engine.discard(conversationId, p.client_msg_id)} />
        ))}
        {closed && (
          <p className="rhq-closed" data-testid="rhq-closed">
            {CLOSED_TEXT} Write below to reopen it.
          </p>
        )}
        {typing && (
          <p className="rhq-typing" data-testid="rhq-typing">
            {typing} is typing…
          </p>
        )}
      </div>
      <div className="rhq-composer">
        <textarea
          data-testid="rhq-composer"
          rows={2}
          placeholder={closed ? "Write to reopen this conversation…" : "Write a message…"}
          value={draft}
          onChange={(e) => {
            setDraft(e.target.value);
            engine.typing(e.target.value.length > 0);
          }}
          onKeyDown={onKeyDown}
          aria-label="Message"
        />
        <button className="rhq-send" data-testid="rhq-send" onClick={submit} disabled={!draft.trim()}>
          Send
        </button>
      </div>
    </div>
  );
}

function Bubble({ message, seen }: { message: Message; seen: boolean }) {
  const mine = message.sender === "user";
  return (
    <div className={`rhq-bubble ${mine ? "rhq-mine" : "rhq-theirs"}`} data-testid="rhq-message" data-seq={message.seq} data-sender={message.sender} data-client-msg-id={message.client_msg_id}>
      {!mine && <span className="rhq-author">{message.author.name || "Support"}</span>}
      {/* body_html is the server's sanitised rendering (nh3): safe to insert. */}
      <div className="rhq-body" dangerouslySetInnerHTML={{ __html: message.body_html }} />
      <span className="rhq-meta">
        {when(message.created_at)}
        {seen && (
          <span data-testid="rhq-seen" className="rhq-seen">
            {" "}
            · Seen
          </span>
        )}
      </span>
    </div>
  );
}

function PendingBubble({
  pending,
  connected,
  onRetry,
  onDiscard,
}: {
  pending: PendingMessage;
  connected: boolean;
  onRetry: () => void;
  onDiscard: () => void;
}) {
  return (
    <div className="rhq-bubble rhq-mine rhq-pending" data-testid="rhq-pending" data-status={pending.status}>
      <div className="rhq-body rhq-plain">{pending.body}</div>
      <span className="rhq-meta">
        {pending.status === "sending" ? (
          connected ? "Sending…" : "Not sent yet: it will be sent when support can be reached"
        ) : (
          <>
            Not sent{pending.error ? `: ${pending.error}` : ""} <button onClick={onRetry}>Retry</button> <button onClick={onDiscard}>Delete</button>
          </>
        )}
      </span>
    </div>
  );
}

function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
