// A few screens under /dashboard/: inbox[/<conversation id>], team, settings, login, invite.
import { useSyncExternalStore } from "react";

const BASE = "/dashboard";

export type Route =
  | { screen: "inbox"; conversationId: string | null }
  | { screen: "team" }
  | { screen: "settings" }
  | { screen: "login" }
  | { screen: "invite" };

export function parse(pathname: string): Route {
  const parts = pathname.replace(/^\/dashboard\/?/, "").split("/").filter(Boolean);
  switch (parts[0]) {
    case "team":
      return { screen: "team" };
    case "settings":
      return { screen: "settings" };
    case "login":
      return { screen: "login" };
    case "invite":
      return { screen: "invite" };
    default:
      return { screen: "inbox", conversationId: parts[0] === "inbox" && parts[1] ? parts[1] : null };
  }
}

export function href(route: Route): string {
  switch (route.screen) {
    case "inbox":
      return route.conversationId ? `${BASE}/inbox/${route.conversationId}` : `${BASE}/inbox`;
    default:
      return `${BASE}/${route.screen}`;
  }
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function navigate(route: Route, replace = false): void {
  const url = href(route);
  if (url === location.pathname) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const path = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => location.pathname,
  );
  return parse(path);
}
