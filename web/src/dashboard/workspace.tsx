// The agents' workspace in the conversation screen (docs/workspace.md): private notes and
// staff-only events placed in the timeline, labels, and saved replies typed as `/shortcut`.
import { useEffect, useState } from "react";
import type { components } from "../api/schema";
import type { InboxConversation, Label, Me, Message, SavedReply, TimelineItem } from "../api/types";
import { type Api, errorText } from "./api";
import { when } from "./components";
import type { Desk } from "./desk";
import { navigate } from "./router";

export function useLabels(api: Api): Label[] {
  const [labels, setLabels] = useState<Label[]>([]);
  useEffect(() => {
    void api.GET("/admin/api/labels").then(({ data }) => data && setLabels(data));
  }, [api]);
  return labels;
}

export function useSavedReplies(api: Api, me: Me): SavedReply[] {
  const [replies, setReplies] = useState<SavedReply[]>([]);
  useEffect(() => {
    if (!me.permissions.includes("messages:write")) return;
    void api.GET("/admin/api/saved-replies").then(({ data }) => data && setReplies(data));
  }, [api, me]);
  return replies;
}

/** The inbox's label filter (beside Open, Mine…). */
export function LabelFilter({ desk, labels, value }: { desk: Desk; labels: Label[]; value: string | null }) {
  if (labels.length === 0) return null;
  return (
    <select aria-label="Label" data-testid="label-filter" value={value ?? ""} onChange={(e) => void desk.setLabel(e.target.value || null)}>
      <option value="">All labels</option>
      {labels.map((l) => (
        <option key={l.id} value={l.id}>
          {l.name}
        </option>
      ))}
    </select>
  );
}

export function LabelChips({ desk, conversation, labels, canWrite }: { desk: Desk; conversation: InboxConversation; labels: Label[]; canWrite: boolean }) {
  const [error, setError] = useState<string | null>(null);
  const on = labels.filter((l) => (conversation.label_ids ?? []).includes(l.id));
  const off = labels.filter((l) => !(conversation.label_ids ?? []).includes(l.id));
  const change = async (labelId: string, add: boolean) => setError(await desk.setConversationLabel(conversation.id, labelId, add));
  return (
    <div className="labels" data-testid="labels">
      {on.map((l) => (
        <span key={l.id} className="label-chip" data-testid="label-chip" data-label={l.name} style={{ borderColor: l.color, color: l.color }}>
          {l.name}
          {canWrite && (
            <button className="link" aria-label={`Remove ${l.name}`} data-testid="label-remove" onClick={() => void change(l.id, false)}>
              ×
            </button>
          )}
        </span>
      ))}
      {canWrite && off.length > 0 && (
        <select aria-label="Add a label" data-testid="label-add" value="" onChange={(e) => e.target.value && void change(e.target.value, true)}>
          <option value="">+ Label</option>
          {off.map((l) => (
            <option key={l.id} value={l.id}>
              {l.name}
            </option>
          ))}
        </select>
      )}
      {error && <span className="error">{error}</span>}
    </div>
  );
}

/** A note (staff only) or an event such as "Ann assigned it to Bob", where it happened. */
export function ItemLine({ item }: { item: TimelineItem }) {
  if (item.kind === "event") {
    return (
      <div className="bubble system" data-testid="timeline-event" data-type={String(item.data.type ?? "")}>
        {item.body} · {when(item.created_at)}
      </div>
    );
  }
  return (
    <div className="bubble note" data-testid="note" data-client-msg-id={item.client_msg_id}>
      <span className="author">{item.author_name || "Agent"} · private note</span>
      {/* body_html is the server's sanitised rendering (nh3). */}
      <div className="body" dangerouslySetInnerHTML={{ __html: item.body_html }} />
      <span className="meta">{when(item.created_at)}</span>
    </div>
  );
}

/** Where the staff-only items go among the loaded messages: before the first, or after the
 * message of their `after_seq` (the last loaded one if it is not loaded yet). Items placed before
 * an older page that is not loaded are left out until it is. */
export function placeItems(items: readonly TimelineItem[], messages: readonly Message[]): { before: TimelineItem[]; after: Record<number, TimelineItem[]> } {
  const before: TimelineItem[] = [];
  const after: Record<number, TimelineItem[]> = {};
  const first = messages[0]?.seq;
  const last = messages[messages.length - 1]?.seq;
  for (const item of items) {
    if (first === undefined || last === undefined) before.push(item);
    else if (item.after_seq >= first) (after[Math.min(item.after_seq, last)] ??= []).push(item);
    else if (first === 1) before.push(item);
  }
  return { before, after };
}

/** Saved replies whose shortcut starts with what follows the draft's leading `/`. */
export function shortcutMatches(replies: readonly SavedReply[], draft: string): SavedReply[] {
  const typed = /^\/([A-Za-z0-9_-]*)$/.exec(draft);
  if (!typed) return [];
  const prefix = typed[1]!.toLowerCase();
  return replies.filter((r) => r.shortcut.startsWith(prefix));
}

export async function renderReply(api: Api, reply: SavedReply, conversationId: string): Promise<string> {
  const { data, error } = await api.POST("/admin/api/saved-replies/{reply_id}/render", {
    params: { path: { reply_id: reply.id } },
    body: { conversation_id: conversationId },
  });
  if (!data) throw new Error(errorText(error));
  return data.body;
}

export function ReplyPicker({ matches, onPick }: { matches: SavedReply[]; onPick: (reply: SavedReply) => void }) {
  if (matches.length === 0) return null;
  return (
    <ul className="reply-picker" data-testid="reply-picker" role="listbox">
      {matches.map((r) => (
        <li key={r.id}>
          <button className="link" data-testid="reply-option" data-shortcut={r.shortcut} onClick={() => onPick(r)}>
            <strong>/{r.shortcut}</strong> {r.name}
          </button>
        </li>
      ))}
    </ul>
  );
}

type Profile = components["schemas"]["ProfileOut"];

/** The end user's other conversations, devices and latest events (GET /users/{id}/profile). */
export function ProfileHistory({ api, conversation }: { api: Api; conversation: InboxConversation }) {
  const [profile, setProfile] = useState<Profile | null>(null);
  useEffect(() => {
    let live = true;
    void api
      .GET("/admin/api/users/{end_user_id}/profile", { params: { path: { end_user_id: conversation.end_user_id } } })
      .then(({ data }) => live && setProfile(data ?? null));
    return () => {
      live = false;
    };
  }, [api, conversation.end_user_id, conversation.id]);
  if (!profile) return null;
  const others = profile.conversations.filter((c) => c.id !== conversation.id);
  return (
    <div data-testid="profile-history">
      <h4>Other conversations</h4>
      {others.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul data-testid="other-conversations">
          {others.map((c) => (
            <li key={c.id}>
              <button className="link" data-testid="other-conversation" onClick={() => navigate({ screen: "inbox", conversationId: c.id })}>
                {c.subject || "Conversation"} · {c.status} · {when(c.last_activity_at)}
              </button>
            </li>
          ))}
        </ul>
      )}
      <h4>Devices</h4>
      <ul data-testid="devices">
        {profile.devices.map((d, i) => (
          <li key={i} data-testid="device">
            {d.platform}
            {d.app_version ? ` ${d.app_version}` : ""} · last seen {when(d.last_seen_at)}
          </li>
        ))}
      </ul>
      {profile.events.length > 0 && (
        <>
          <h4>Latest events</h4>
          <ul data-testid="events">
            {profile.events.slice(0, 10).map((e, i) => (
              <li key={i}>
                {e.name} · {when(e.occurred_at)}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

/** The signed-in member's availability for auto-assignment: a button that switches between
 * available and away; kept right when it changes elsewhere (another tab: `agent:availability`). */
export function AvailabilityToggle({ api, desk, staffId }: { api: Api; desk: Desk; staffId: string }) {
  const [available, setAvailable] = useState<boolean | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    void api.GET("/admin/api/assignment/agents").then(({ data }) => {
      const mine = data?.find((row) => row.id === staffId);
      if (mine) setAvailable(mine.available);
    });
    return desk.listen("agent:availability", ({ staff_id, available: now }) => {
      if (staff_id === staffId) setAvailable(now);
    });
  }, [api, desk, staffId]);
  if (available === null) return null;
  const toggle = async () => {
    setBusy(true);
    const { error } = await api.PUT("/admin/api/assignment/availability", { body: { available: !available } });
    setBusy(false);
    if (!error) setAvailable(!available);
  };
  return (
    <button
      className={available ? "availability available" : "availability away"}
      data-testid="availability"
      data-available={String(available)}
      disabled={busy}
      title={available ? "New conversations may be assigned to you. Click to go away." : "Away: no new conversations are assigned to you. Click to be available."}
      onClick={() => void toggle()}
    >
      {available ? "● Available" : "○ Away"}
    </button>
  );
}
