/** Every failure the SDK reports: the server's error code (or the SDK's own, for the network),
 * the HTTP status when there was one, and whether retrying can help. */
export class ReplyHQError extends Error {
  readonly code: string;
  readonly status: number | null;
  readonly details: { field: string; reason: string }[] | undefined;
  readonly retryAfter: number | undefined;

  constructor(
    code: string,
    message: string,
    options: { status?: number | null; details?: { field: string; reason: string }[]; retryAfter?: number } = {},
  ) {
    super(`${code}: ${message}`);
    this.name = "ReplyHQError";
    this.code = code;
    this.status = options.status ?? null;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }

  /** A failure that may pass later (network, timeout, rate limit, server busy). */
  get transient(): boolean {
    return TRANSIENT.has(this.code) || (this.status !== null && this.status >= 500);
  }
}

/** Codes worth retrying with the same request (sends are idempotent by client_msg_id). */
export const TRANSIENT = new Set([
  "NETWORK_ERROR",
  "TIMEOUT",
  "RATE_LIMITED",
  "SERVICE_UNAVAILABLE",
  "DATABASE_UNAVAILABLE",
  "INTERNAL_ERROR",
  "SESSION_REVOKED",
]);

/** Handshake refusals no retry can change until the app identifies again. */
export const IDENTITY_REFUSALS = new Set([
  "INVALID_CREDENTIALS",
  "DEVICE_ID_REQUIRED",
  "IDENTITY_REQUIRED",
  "INVALID_USER_HASH",
  "USER_HASH_REQUIRED",
  "VALIDATION_ERROR", // the auth object breaks handshake.auth.json (protocol section 2)
]);

export function fromBody(body: unknown, status: number | null): ReplyHQError {
  const data = (body ?? {}) as { code?: unknown; error?: unknown; details?: unknown; retry_after?: unknown };
  const code = typeof data.code === "string" ? data.code : status === null ? "NETWORK_ERROR" : `HTTP_${status}`;
  const message = typeof data.error === "string" ? data.error : "request failed";
  return new ReplyHQError(code, message, {
    status,
    details: Array.isArray(data.details) ? (data.details as { field: string; reason: string }[]) : undefined,
    retryAfter: typeof data.retry_after === "number" ? data.retry_after : undefined,
  });
}
