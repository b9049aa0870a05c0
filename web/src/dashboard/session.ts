// The staff sign-in: tokens, silent refresh, logout. The refresh token is single use and
// rotated on every refresh, so tabs of the same browser share one chain through localStorage
// and take turns under a Web Lock: two tabs never spend the same token (that would end the
// sign-in as a suspected theft).
import type { Staff, TokenPair } from "../api/types";

const KEY = "replyhq:dashboard:session";
const LOCK = "replyhq:dashboard:refresh";
const EARLY_MS = 60_000; // refresh a minute before the access token expires

export interface Session {
  access_token: string;
  refresh_token: string;
  expires_at: number; // ms since epoch
  staff: Staff;
}

type Listener = (session: Session | null) => void;

export class SessionStore {
  private session: Session | null = read();
  private listeners = new Set<Listener>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private refreshing: Promise<Session | null> | null = null;

  constructor(private readonly baseUrl = "") {
    window.addEventListener("storage", (event) => {
      if (event.key !== KEY) return;
      this.session = read();
      this.schedule();
      this.emit();
    });
    this.schedule();
  }

  get current(): Session | null {
    return this.session;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    this.listeners.forEach((l) => l(this.session));
  }

  adopt(pair: TokenPair): Session {
    this.session = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      expires_at: Date.now() + pair.expires_in * 1000,
      staff: pair.staff,
    };
    localStorage.setItem(KEY, JSON.stringify(this.session));
    this.schedule();
    this.emit();
    return this.session;
  }

  clear(): void {
    this.session = null;
    localStorage.removeItem(KEY);
    this.schedule();
    this.emit();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.session) return;
    const wait = Math.max(1000, this.session.expires_at - Date.now() - EARLY_MS);
    this.timer = setTimeout(() => void this.refresh(), Math.min(wait, 2 ** 31 - 1));
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string | null> {
    const session = this.session;
    if (!session) return null;
    if (session.expires_at - Date.now() > 5_000) return session.access_token;
    return (await this.refresh())?.access_token ?? null;
  }

  /** Spend the refresh token for a new pair; null (signed out) when the sign-in has ended. */
  refresh(): Promise<Session | null> {
    this.refreshing ??= this.withLock(() => this.doRefresh()).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async withLock<T>(task: () => Promise<T>): Promise<T> {
    if (typeof navigator !== "undefined" && navigator.locks) return navigator.locks.request(LOCK, task);
    return task();
  }

  private async doRefresh(): Promise<Session | null> {
    const before = this.session;
    const stored = read(); // another tab may have refreshed already
    if (stored && before && stored.refresh_token !== before.refresh_token && stored.expires_at - Date.now() > EARLY_MS) {
      this.session = stored;
      this.schedule();
      this.emit();
      return stored;
    }
    const token = stored?.refresh_token ?? before?.refresh_token;
    if (!token) return null;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}/admin/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch {
      // Network down: keep the session and try again soon.
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.refresh(), 5000);
      return this.session;
    }
    if (response.ok) return this.adopt((await response.json()) as TokenPair);
    if (response.status === 401) this.clear();
    return this.session;
  }

  async logout(): Promise<void> {
    const session = this.session;
    this.clear();
    if (!session) return;
    try {
      await fetch(`${this.baseUrl}/admin/logout`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${session.access_token}` },
        body: JSON.stringify({ refresh_token: session.refresh_token }),
      });
    } catch {
      // Offline: the tokens are gone from this browser; the refresh token expires on its own.
    }
  }
}

function read(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}
