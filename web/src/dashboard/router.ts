// A few screens under /dashboard/: inbox[/<conversation id>[/profile]][?at=<seq>: opened at that
// message, e.g. from a search result], team, settings, account,
// login, invite, and the screens e-mailed links open (forgot-password, reset-password,
// confirm-email). On a phone the inbox's list, conversation and profile are separate screens.
import { useSyncExternalStore } from "react";

const BASE = "/dashboard";

export type Route =
  | { screen: "inbox"; conversationId: string | null; profile?: boolean; at?: number }
  | { screen: "team" }
  | { screen: "settings" }
  | { screen: "billing" }
  | { screen: "reports" }
  | { screen: "login" }
  | { screen: "invite" }
  | { screen: "account" }
  | { screen: "forgot-password" }
  | { screen: "reset-password" }
  | { screen: "confirm-email" }
  | { screen: "signup" }
  | { screen: "verify-email" }
  | { screen: "get-started" }
  | { screen: "console" }
  | { screen: "segments" }
  | { screen: "messages" };

/** A dashboard path, with its query (`?at=`) if any. */
export function parse(path: string): Route {
  const [pathname = "", search = ""] = path.split("?");
  const parts = pathname.replace(/^\/dashboard\/?/, "").split("/").filter(Boolean);
  switch (parts[0]) {
    case "team":
      return { screen: "team" };
    case "settings":
      return { screen: "settings" };
    case "billing":
      return { screen: "billing" };
    case "reports":
      return { screen: "reports" };
    case "login":
      return { screen: "login" };
    case "invite":
      return { screen: "invite" };
    case "signup":
    case "verify-email":
    case "get-started":
    case "console":
    case "segments":
    case "messages":
      return { screen: parts[0] };
    case "account":
    case "forgot-password":
    case "reset-password":
    case "confirm-email":
      return { screen: parts[0] };
    default:
      if (parts[0] !== "inbox" || !parts[1]) return { screen: "inbox", conversationId: null };
      const at = Number(new URLSearchParams(search).get("at"));
      return { screen: "inbox", conversationId: parts[1], profile: parts[2] === "profile", ...(at > 0 ? { at } : {}) };
  }
}

export function href(route: Route): string {
  switch (route.screen) {
    case "inbox":
      if (!route.conversationId) return `${BASE}/inbox`;
      return `${BASE}/inbox/${route.conversationId}${route.profile ? "/profile" : ""}${route.at ? `?at=${route.at}` : ""}`;
    default:
      return `${BASE}/${route.screen}`;
  }
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

function here(): string {
  return location.pathname + location.search;
}

export function navigate(route: Route, replace = false): void {
  const url = href(route);
  if (url === here()) return;
  if (replace) history.replaceState(history.state, "", url);
  else history.pushState({ from: here() }, "", url);
  listeners.forEach((l) => l());
}

/** Up one screen (conversation → list, profile → conversation): the browser's own Back when the
 * parent is the page we came from, so Back and this button agree; else replace the entry. */
export function goUp(parent: Route): void {
  const state = history.state as { from?: string } | null;
  if (state?.from !== undefined && href(parse(state.from)) === href(parent)) history.back();
  else navigate(parent, true);
}

export function useRoute(): Route {
  const path = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    here,
  );
  return parse(path);
}
