// fetch for the typed clients: a network failure becomes an answer like any other (status 0
// is not allowed in a Response, so 503 with code NETWORK_ERROR), never an unhandled rejection.
export const NETWORK_ERROR = "NETWORK_ERROR";

export async function safeFetch(request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch {
    const body = JSON.stringify({ error: "The network is unavailable.", code: NETWORK_ERROR });
    return new Response(body, { status: 503, headers: { "Content-Type": "application/json" } });
  }
}

/** Worth trying again later: the network, the server's load, or a rate limit. */
export function transient(status: number): boolean {
  return status === 429 || status >= 500;
}
