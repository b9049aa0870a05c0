// When the messenger cannot work on a page at all, the end user gets plain words (never the
// server's developer text) and the developer gets the reason and the fix in the browser console.

/** identity: the app accepts only verified users and the page has not identified one;
 * origin: the server refuses this site (ALLOWED_ORIGINS); unavailable: anything else refused. */
export type Blocked = "identity" | "origin" | "unavailable";

const IDENTITY_REFUSALS = new Set(["IDENTITY_REQUIRED", "INVALID_USER_HASH", "USER_HASH_REQUIRED", "DEVICE_UNVERIFIED"]);

export function blockedBy(code: string): Blocked {
  if (IDENTITY_REFUSALS.has(code)) return "identity";
  if (code === "ORIGIN_REFUSED") return "origin";
  return "unavailable";
}

export const BLOCKED_TEXT: Record<Blocked, { title: string; detail: string }> = {
  identity: {
    title: "Sign in to chat with support",
    detail: "Sign in to your account on this site, then open this chat again.",
  },
  origin: {
    title: "Support chat is not available on this site",
    detail: "Please contact us another way for now.",
  },
  unavailable: {
    title: "Support chat is not available right now",
    detail: "Please try again later.",
  },
};

const told = new Set<string>();

export function tellDeveloper(blocked: Blocked, code: string, serverText: string, baseUrl: string): void {
  const key = `${blocked}:${code}`;
  if (told.has(key)) return; // once per page: the messenger may meet the same refusal again
  told.add(key);
  if (code === "IDENTITY_REQUIRED") {
    console.warn(
      "ReplyHQ: this app accepts only verified users, so the messenger shows \"Sign in to chat with support\". " +
        "Call ReplyHQ.identify({ user_id, user_hash }) once the person is signed in; user_hash is the hex " +
        "HMAC-SHA256 of user_id keyed with the app's identity secret, computed on your server. " +
        "(Or turn off \"require identity verification\" in the dashboard's settings.)",
    );
  } else if (code === "USER_HASH_REQUIRED" || code === "DEVICE_UNVERIFIED") {
    console.warn(
      "ReplyHQ: this person's identity must be proven: call ReplyHQ.identify({ user_id, user_hash }) with " +
        "user_hash, the hex HMAC-SHA256 of user_id keyed with the app's identity secret, computed on your server.",
    );
  } else if (code === "INVALID_USER_HASH") {
    console.error(
      "ReplyHQ: identify() was refused: user_hash does not match user_id. It must be the hex HMAC-SHA256 of " +
        "user_id keyed with the app's identity secret (dashboard settings), computed on your server.",
    );
  } else if (blocked === "origin") {
    const origin = location.origin;
    console.error(
      `ReplyHQ: the server at ${baseUrl} refused this page's origin (${origin}). ` +
        `Add ${origin} to the server's ALLOWED_ORIGINS setting (comma-separated) and restart it; ` +
        "its log names each refused origin (origin_refused).",
    );
  } else {
    console.error(`ReplyHQ: the server refused the messenger (${code || "error"}): ${serverText}`);
  }
}

/** After a CORS request failed like a network error: is the server reachable from here anyway?
 * An opaque no-cors request succeeds whatever the origin, so if it does, CORS refused us. The
 * probe names the app in its address (all a no-cors request can carry) and is a POST (browsers
 * send the page's Origin with a no-cors POST, not with a GET), so the server shows the refusal
 * in that app's test console in the dashboard; its answer (405) is not read. */
export async function originRefused(baseUrl: string, appId: string): Promise<boolean> {
  if (new URL(baseUrl).origin === location.origin) return false;
  try {
    await fetch(`${baseUrl}/healthz?app_id=${encodeURIComponent(appId)}`, { method: "POST", mode: "no-cors", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}
