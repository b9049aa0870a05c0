// The dashboard's typed HTTP client (openapi-fetch over the generated schema). Every request
// carries the access token; a 401 for an expired or stale token refreshes once and retries.
import createClient from "openapi-fetch";
import type { paths } from "../api/schema";
import { safeFetch } from "../shared/http";
import type { SessionStore } from "./session";

export type Api = ReturnType<typeof createClient<paths>>;

const REFRESHABLE = new Set(["TOKEN_EXPIRED", "TOKEN_STALE", "INVALID_TOKEN"]);

export function createApi(sessions: SessionStore, baseUrl = ""): Api {
  const authorised = async (request: Request): Promise<Response> => {
    const token = await sessions.accessToken();
    const headers = new Headers(request.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return safeFetch(new Request(request, { headers }));
  };
  return createClient<paths>({
    baseUrl,
    fetch: async (request: Request) => {
      const retry = request.clone();
      const response = await authorised(request);
      if (response.status !== 401 || !sessions.current) return response;
      const code = ((await response.clone().json().catch(() => ({}))) as { code?: string }).code ?? "";
      if (!REFRESHABLE.has(code)) {
        if (code === "TOKEN_REVOKED") sessions.clear();
        return response;
      }
      if (!(await sessions.refresh())) return response;
      return authorised(retry);
    },
  });
}

/** The server's error sentence, for people. */
export function errorText(error: unknown, fallback = "Something went wrong."): string {
  const text = (error as { error?: unknown } | undefined)?.error;
  return typeof text === "string" ? text : fallback;
}
