import { useEffect, useSyncExternalStore } from "react";
import type { Desk } from "./desk";

const LABEL = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…", offline: "Offline" } as const;

export function ConnectionBadge({ desk }: { desk: Desk }) {
  const { connection } = useSyncExternalStore(desk.subscribe, desk.getState);
  return (
    <div className={`connection ${connection}`} data-testid="connection" data-state={connection} role="status">
      <span className="dot" aria-hidden="true" />
      {LABEL[connection]}
    </div>
  );
}

export function OnlineDot({ online }: { online: boolean | undefined }) {
  return <span className={online ? "presence on" : "presence"} data-testid="presence" data-online={online ? "yes" : "no"} title={online ? "Online now" : "Offline"} />;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : date.toLocaleDateString();
}

export function displayName(user: { name: string | null; email: string | null; user_id: string | null; anonymous: boolean }): string {
  return user.name || user.email || user.user_id || (user.anonymous ? "Visitor" : "Unknown");
}

/** The tab's title counts unread conversations in the list, for an agent working in another tab. */
export function UnreadTitle({ desk }: { desk: Desk }) {
  const { inbox } = useSyncExternalStore(desk.subscribe, desk.getState);
  const unread = inbox.filter((c) => c.unread_count > 0).length;
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) ReplyHQ` : "ReplyHQ";
  }, [unread]);
  useEffect(() => () => void (document.title = "ReplyHQ"), []);
  return null;
}
