// The messenger's view: a launcher and a chat panel. Text from people (bodies, names) is
// rendered as React text; a stored message's HTML is the server's sanitised `body_html`.
import { createContext, useContext, useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore, type CSSProperties, type KeyboardEvent } from "react";
import type { Conversation, Message } from "../api/types";
import type { PendingMessage } from "../shared/timeline";
import type { Blocked } from "./blocked";
import { type MessengerConfig, rate, ratingState, type RatingState, reportContext } from "./branding";
import { type ConnectionState, type Messenger, NEW } from "./store";
import { backWhen, blockedText, expectedReply, type Key, type Translate, translator } from "./i18n";
import { ChatIcon, CloseIcon } from "./icons";

const STATE_KEY: Record<ConnectionState, Key> = {
  connecting: "connecting",
  connected: "online",
  reconnecting: "reconnecting",
  offline: "offline",
};

interface Ui {
  t: Translate;
  config: MessengerConfig | null;
  engine: Messenger;
}

const UiContext = createContext<Ui | null>(null);

function useUi(): Ui {
  const ui = useContext(UiContext);
  if (!ui) throw new Error("MessengerView provides the UI context");
  return ui;
}

export function MessengerView({
  engine,
  config: pending,
  host,
}: {
  engine: Messenger;
  config?: Promise<MessengerConfig | null>;
  host?: HTMLElement;
}) {
  const snap = useSyncExternalStore(engine.subscribe, engine.getSnapshot);
  const open = snap.open;
  const launcher = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLElement>(null);
  const [config, setConfig] = useState<MessengerConfig | null>(null);
  useEffect(() => {
    let live = true;
    let changed = false;
    void pending?.then((loaded) => live && !changed && setConfig(loaded));
    // A change saved in the dashboard while this page is open (servers that announce it).
    const off = engine.client.on("settings", (config) => {
      changed = true;
      if (live) setConfig(config as unknown as MessengerConfig);
    });
    return () => {
      live = false;
      off();
    };
  }, [pending, engine]);
  const settings = config?.settings;
  const t = translator(settings?.language);
  const left = settings?.launcher_position === "left";
  useEffect(() => {
    if (!host) return;
    host.style.setProperty(left ? "left" : "right", "0");
    host.style.removeProperty(left ? "right" : "left");
  }, [host, left]);

  // Agents see where the visitor is: reported once identified, and on in-page navigation.
  const identified = snap.user !== null;
  useEffect(() => {
    if (!identified) return;
    const report = () => void reportContext(engine);
    report();
    window.addEventListener("popstate", report);
    window.addEventListener("hashchange", report);
    return () => {
      window.removeEventListener("popstate", report);
      window.removeEventListener("hashchange", report);
    };
  }, [identified, engine]);
  const ui: Ui = { t, config, engine };
  const style = settings ? ({ "--rhq-color": settings.color } as CSSProperties) : undefined;
  const availability = config?.availability;
  const away = settings?.office_hours_enabled && availability && !availability.open;

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
    <UiContext.Provider value={ui}>
    <div className={`rhq-root${left ? " rhq-left" : ""}`} style={style} data-testid="rhq-root" data-language={settings?.language ?? "en"} onKeyDown={open ? onKeyDown : undefined}>
      <div className="rhq-sr" role="log" aria-live="polite" aria-atomic="true" data-testid="rhq-announcer">
        {snap.announcement}
      </div>
      {open && (
        <section className="rhq-panel" data-testid="rhq-panel" aria-label={t("supportChat")} ref={panel}>
          <header className="rhq-header">
            {snap.current !== null && snap.conversations.length > 0 && (
              <button className="rhq-icon" data-testid="rhq-back" aria-label={t("allConversations")} onClick={() => void engine.openConversation(null)}>
                ‹
              </button>
            )}
            {settings?.avatar_url && <img className="rhq-avatar" src={settings.avatar_url} alt="" />}
            <div className="rhq-title">
              <strong data-testid="rhq-team">{settings?.team_name ?? t("support")}</strong>
              {!snap.blocked && (
                <span className={`rhq-status rhq-${snap.state}`} data-testid="rhq-status" data-state={snap.state}>
                  {t(STATE_KEY[snap.state])}
                </span>
              )}
            </div>
            <button className="rhq-icon" aria-label={t("close")} onClick={close}>
              <CloseIcon size={18} />
            </button>
          </header>
          {snap.error && !snap.blocked && <p className="rhq-error">{snap.error}</p>}
          {away && !snap.blocked && (
            <div className="rhq-away" data-testid="rhq-away">
              <strong>{t("away")}</strong> {settings.away_message}
              {availability.back_at && <span data-testid="rhq-back-at"> {t("backAt", { when: backWhen(settings.language, availability.back_at) })}</span>}
            </div>
          )}
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
        aria-label={open ? t("closeChat") : t("openChat")}
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
    </UiContext.Provider>
  );
}

function Notice({ blocked }: { blocked: Blocked }) {
  const text = blockedText(useUi().t, blocked);
  return (
    <div className="rhq-notice" data-testid="rhq-blocked" data-reason={blocked} tabIndex={-1}>
      <strong>{text.title}</strong>
      <p>{text.detail}</p>
    </div>
  );
}

function ConversationList({ conversations, onOpen }: { conversations: Conversation[]; onOpen: (id: string | null) => void }) {
  const { t } = useUi();
  return (
    <div className="rhq-list">
      <button className="rhq-new" data-testid="rhq-new" onClick={() => onOpen(NEW)}>
        {t("newConversation")}
      </button>
      <ul>
        {conversations.map((c) => (
          <li key={c.id}>
            <button className="rhq-item" data-testid="rhq-conversation-item" data-id={c.id} onClick={() => onOpen(c.id)}>
              <span className="rhq-preview">{c.last_message?.body ?? c.subject ?? t("newConversation")}</span>
              {c.status === "closed" && <span className="rhq-tag">{t("closedTag")}</span>}
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
  const { t, config } = useUi();
  const settings = config?.settings;
  const expected = expectedReply(t, config?.expected_reply_seconds);
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
  const [error, setError] = useState<string | null>(null);

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
            {t("earlier")}
          </button>
        )}
        {messages.length === 0 && pending.length === 0 && (
          <div className="rhq-hint" data-testid="rhq-greeting">
            <strong>{settings?.greeting ?? "Hi there 👋"}</strong>
            <p>{settings?.intro ?? "Ask us anything: we are here to help."}</p>
            {expected && <p className="rhq-expected" data-testid="rhq-expected">{expected}</p>}
          </div>
        )}
        {messages.map((m) => (
          <Bubble key={m.seq} message={m} seen={m === lastMine && agentRead >= m.seq} fileUrl={(p) => engine.fileUrl(p)} />
        ))}
        {pending.map((p) => (
          <PendingBubble key={p.client_msg_id} pending={p} connected={connected} onRetry={() => engine.retry(conversationId, p.client_msg_id)} onDiscard={() => engine.discard(conversationId, p.client_msg_id)} />
        ))}
        {closed && (
          <p className="rhq-closed" data-testid="rhq-closed">
            {t("closed")} {t("writeToReopen")}
          </p>
        )}
        {closed && conversationId !== NEW && <Rating conversationId={conversationId} />}
        {typing && (
          <p className="rhq-typing" data-testid="rhq-typing">
            {t("isTyping", { name: typing })}
          </p>
        )}
      </div>
      <div className="rhq-composer">
        <textarea
          data-testid="rhq-composer"
          rows={2}
          placeholder={closed ? t("placeholderClosed") : t("placeholder")}
          value={draft}
          onChange={(e) => {
            setDraft(e.target.value);
            engine.typing(e.target.value.length > 0);
          }}
          onKeyDown={onKeyDown}
          aria-label={t("message")}
        />
        <label className="rhq-attach" title={t("attach")} aria-label={t("attach")}>
          +
          <input
            type="file"
            data-testid="rhq-attach-input"
            hidden
            onChange={(e) => {
              const file = e.target.files?.[0];
              e.target.value = "";
              if (file) void engine.sendFile(file).then(setError);
            }}
          />
        </label>
        {error && <p className="rhq-error" data-testid="rhq-attach-error">{error}</p>}
        <button className="rhq-send" data-testid="rhq-send" onClick={submit} disabled={!draft.trim()}>
          {t("send")}
        </button>
      </div>
    </div>
  );
}

function Bubble({ message, seen, fileUrl }: { message: Message; seen: boolean; fileUrl: (path: string) => string }) {
  const { t } = useUi();
  const mine = message.sender === "user";
  if (message.kind === "event") {
    // "Alice closed the conversation": a line in the timeline, not a bubble.
    return (
      <div className="rhq-event" data-testid="rhq-event" data-seq={message.seq} data-type={String(message.data?.type ?? "")}>
        {message.body} · {when(message.created_at)}
      </div>
    );
  }
  return (
    <div className={`rhq-bubble ${mine ? "rhq-mine" : "rhq-theirs"}`} data-testid="rhq-message" data-seq={message.seq} data-sender={message.sender} data-client-msg-id={message.client_msg_id}>
      {!mine && <span className="rhq-author">{message.author.name || t("support")}</span>}
      {/* body_html is the server's sanitised rendering (nh3): safe to insert. */}
      <div className="rhq-body" dangerouslySetInnerHTML={{ __html: message.body_html }} />
      {message.attachments?.map((a) =>
        a.kind === "image" && a.thumbnail_url ? (
          <a key={a.id} className="rhq-attachment" href={fileUrl(a.url)} target="_blank" rel="noopener noreferrer">
            <img src={fileUrl(a.thumbnail_url)} alt={a.filename} data-testid="rhq-attachment-image" />
          </a>
        ) : (
          <a key={a.id} className="rhq-attachment" href={fileUrl(a.url)} download={a.filename} data-testid="rhq-attachment">
            📎 {a.filename}
          </a>
        ),
      )}
      <span className="rhq-meta">
        {when(message.created_at)}
        {seen && (
          <span data-testid="rhq-seen" className="rhq-seen">
            {" "}
            · {t("seen")}
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
  const { t } = useUi();
  return (
    <div className="rhq-bubble rhq-mine rhq-pending" data-testid="rhq-pending" data-status={pending.status}>
      <div className="rhq-body rhq-plain">{pending.body}</div>
      <span className="rhq-meta">
        {pending.status === "sending" ? (
          connected ? t("sending") : t("notSentYet")
        ) : (
          <>
            {t("notSent")}
            {pending.error ? `: ${pending.error}` : ""} <button onClick={onRetry}>{t("retry")}</button> <button onClick={onDiscard}>{t("delete")}</button>
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

/** After a closing: 1-5 stars and an optional comment, once per closing (GET/POST .../rating). */
function Rating({ conversationId }: { conversationId: string }) {
  const { t, engine } = useUi();
  const [state, setState] = useState<RatingState | null>(null);
  const [score, setScore] = useState(0);
  const [comment, setComment] = useState("");
  const [sent, setSent] = useState(false);
  useEffect(() => {
    let live = true;
    setSent(false);
    setScore(0);
    void ratingState(engine, conversationId).then((loaded) => live && setState(loaded));
    return () => {
      live = false;
    };
  }, [engine, conversationId]);
  if (sent) {
    return (
      <p className="rhq-rated" data-testid="rhq-rated">
        {t("rateThanks")}
      </p>
    );
  }
  if (!state?.can_rate) return null;
  const submit = async () => {
    if (score > 0 && (await rate(engine, conversationId, score, comment))) setSent(true);
  };
  return (
    <div className="rhq-rating" data-testid="rhq-rating">
      <strong>{t("rateTitle")}</strong>
      <div className="rhq-stars" role="radiogroup" aria-label={t("rateTitle")}>
        {[1, 2, 3, 4, 5].map((n) => (
          <button key={n} role="radio" aria-checked={score === n} aria-label={t("rateStar", { n })} data-testid={`rhq-star-${n}`} className={n <= score ? "rhq-star rhq-on" : "rhq-star"} onClick={() => setScore(n)}>
            ★
          </button>
        ))}
      </div>
      <textarea data-testid="rhq-rating-comment" rows={2} maxLength={2000} placeholder={t("rateComment")} aria-label={t("rateComment")} value={comment} onChange={(e) => setComment(e.target.value)} />
      <button className="rhq-send" data-testid="rhq-rate" disabled={score === 0} onClick={() => void submit()}>
        {t("rateSend")}
      </button>
    </div>
  );
}
