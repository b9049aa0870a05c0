// The app's messenger settings (GET /v1/messenger): colour, position, team, greeting, language,
// office hours. Loaded at start, so a change in the dashboard reaches every page without a code
// change. Also the two calls of the UI layer: visitor context and ratings.
import type { components } from "../api/schema";

export type MessengerConfig = components["schemas"]["MessengerConfig"];
export type RatingState = components["schemas"]["RatingState"];

/** The SDK's authenticated calls (this device's headers, typed errors): the messenger's store. */
export interface DeviceApi {
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export async function loadConfig(api: DeviceApi): Promise<MessengerConfig | null> {
  try {
    return await api.request<MessengerConfig>("GET", "/v1/messenger");
  } catch {
    return null; // the messenger still works with its defaults
  }
}

/** The page the visitor is on; browser and OS come from the request's User-Agent. */
export async function reportContext(api: DeviceApi): Promise<void> {
  const http = (value: string) => (/^https?:/.test(value) ? value.slice(0, 2000) : null);
  const body = { page_url: http(location.href), page_title: document.title.slice(0, 300) || null, referrer: http(document.referrer) };
  try {
    await api.request("POST", "/v1/context", body);
  } catch {
    // context is a courtesy to agents: never an error for the visitor
  }
}

export async function ratingState(api: DeviceApi, conversationId: string): Promise<RatingState | null> {
  try {
    return await api.request<RatingState>("GET", `/v1/conversations/${encodeURIComponent(conversationId)}/rating`);
  } catch {
    return null;
  }
}

export async function rate(api: DeviceApi, conversationId: string, score: number, comment: string): Promise<boolean> {
  try {
    await api.request("POST", `/v1/conversations/${encodeURIComponent(conversationId)}/rating`, { score, comment: comment.trim() || null });
    return true;
  } catch (error) {
    return (error as { status?: number }).status === 409; // already rated elsewhere
  }
}
