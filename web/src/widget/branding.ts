// The app's messenger settings (GET /v1/messenger): colour, position, team, greeting, language,
// office hours. Loaded at start, so a change in the dashboard reaches every page without a code
// change. Also the two calls of the UI layer: visitor context and ratings.
import type { components } from "../api/schema";

export type MessengerConfig = components["schemas"]["MessengerConfig"];
export type RatingState = components["schemas"]["RatingState"];

export interface BrandingOptions {
  appId: string;
  apiKey: string;
  baseUrl: string;
}

export async function loadConfig(options: BrandingOptions): Promise<MessengerConfig | null> {
  try {
    const response = await fetch(`${options.baseUrl}/v1/messenger`, {
      headers: { "X-App-Id": options.appId, "X-Api-Key": options.apiKey },
    });
    return response.ok ? ((await response.json()) as MessengerConfig) : null;
  } catch {
    return null; // the messenger still works with its defaults
  }
}

/** The page the visitor is on; browser and OS come from the request's User-Agent. */
export async function reportContext(baseUrl: string, headers: Record<string, string>): Promise<void> {
  const http = (value: string) => (/^https?:/.test(value) ? value.slice(0, 2000) : null);
  const body = { page_url: http(location.href), page_title: document.title.slice(0, 300) || null, referrer: http(document.referrer) };
  try {
    await fetch(`${baseUrl}/v1/context`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch {
    // context is a courtesy to agents: never an error for the visitor
  }
}

export async function ratingState(baseUrl: string, headers: Record<string, string>, conversationId: string): Promise<RatingState | null> {
  try {
    const response = await fetch(`${baseUrl}/v1/conversations/${conversationId}/rating`, { headers });
    return response.ok ? ((await response.json()) as RatingState) : null;
  } catch {
    return null;
  }
}

export async function rate(baseUrl: string, headers: Record<string, string>, conversationId: string, score: number, comment: string): Promise<boolean> {
  const response = await fetch(`${baseUrl}/v1/conversations/${conversationId}/rating`, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ score, comment: comment.trim() || null }),
  });
  return response.status === 201 || response.status === 409; // 409: already rated elsewhere
}
