// fetch for the typed clients: a network failure becomes an answer like any other (status 0
// is not allowed in a Response, so 503 with code NETWORK_ERROR), never an unhandled rejection.
const NETWORK_ERROR = "NETWORK_ERROR";

export async function safeFetch(request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch {
    const body = JSON.stringify({ error: "The network is unavailable.", code: NETWORK_ERROR });
    return new Response(body, { status: 503, headers: { "Content-Type": "application/json" } });
  }
}
