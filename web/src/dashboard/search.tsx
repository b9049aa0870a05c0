// Search in the inbox (docs/search.md): the app's messages and private notes, ranked, with the
// matched words highlighted, filtered by status, assignee, label and date; and its end users by
// name, e-mail or user id. A hit opens its conversation at that message (the route's `at`).
import { useEffect, useState } from "react";
import type { Assignee, Label, Me, MessageHit, SearchUser } from "../api/types";
import { type Api, errorText } from "./api";
import { when } from "./components";
import { navigate } from "./router";
import { snippetParts } from "./snippet";

export interface SearchFilters {
  status: "" | "open" | "closed";
  assignee: string; // "", "me", "none" or a staff id
  label: string;
  since: string; // yyyy-mm-dd, the browser's day
  until: string;
}

const NO_FILTERS: SearchFilters = { status: "", assignee: "", label: "", since: "", until: "" };
const WAIT_MS = 250; // after the last key before asking

function dayStart(day: string, plusDays = 0): string | undefined {
  if (!day) return undefined;
  const date = new Date(`${day}T00:00`);
  date.setDate(date.getDate() + plusDays);
  return date.toISOString();
}

function personName(user: SearchUser): string {
  return user.name || user.email || user.user_id || "Visitor";
}

interface Results {
  messages: MessageHit[];
  people: SearchUser[];
  error: string | null;
}

function useResults(api: Api, me: Me, q: string, filters: SearchFilters): Results | null {
  const [results, setResults] = useState<Results | null>(null);
  useEffect(() => {
    const terms = q.trim();
    if (!terms) {
      setResults(null);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      const query = {
        q: terms,
        status: filters.status || undefined,
        assignee: filters.assignee || undefined,
        label: filters.label || undefined,
        since: dayStart(filters.since),
        until: dayStart(filters.until, 1), // the whole of that day
      };
      const people = me.permissions.includes("users:read")
        ? api.GET("/admin/api/search/users", { params: { query: { q: terms, limit: 5 } } })
        : Promise.resolve({ data: { items: [] }, error: undefined });
      void Promise.all([api.GET("/admin/api/search/messages", { params: { query } }), people]).then(([found, users]) => {
        if (!live) return;
        const error = found.error ? errorText(found.error, "Search failed.") : null;
        setResults({ messages: found.data?.items ?? [], people: users.data?.items ?? [], error });
      });
    }, WAIT_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api, me, q, filters]);
  return results;
}

/** The box above the inbox's list; while it holds words, the list shows what they find. */
export function SearchBox({ q, onChange }: { q: string; onChange: (q: string) => void }) {
  return (
    <form className="search" role="search" onSubmit={(e) => e.preventDefault()}>
      <input
        type="search"
        data-testid="search-input"
        aria-label="Search messages and people"
        placeholder="Search messages and people"
        maxLength={200}
        value={q}
        onChange={(e) => onChange(e.target.value)}
        onKeyDown={(e) => e.key === "Escape" && onChange("")}
      />
    </form>
  );
}

export function SearchResults({ api, me, q, team, labels, conversationId }: { api: Api; me: Me; q: string; team: Assignee[]; labels: Label[]; conversationId: string | null }) {
  const [filters, setFilters] = useState<SearchFilters>(NO_FILTERS);
  const results = useResults(api, me, q, filters);
  const change = (patch: Partial<SearchFilters>) => setFilters({ ...filters, ...patch });
  return (
    <div className="search-results" data-testid="search-results">
      <div className="search-filters">
        <select aria-label="Status" data-testid="search-status" value={filters.status} onChange={(e) => change({ status: e.target.value as SearchFilters["status"] })}>
          <option value="">Any status</option>
          <option value="open">Open</option>
          <option value="closed">Closed</option>
        </select>
        <select aria-label="Assignee" data-testid="search-assignee" value={filters.assignee} onChange={(e) => change({ assignee: e.target.value })}>
          <option value="">Anyone's</option>
          {me.staff && <option value="me">Mine</option>}
          <option value="none">Unassigned</option>
          {team
            .filter((s) => s.id !== me.staff?.id)
            .map((s) => (
              <option key={s.id} value={s.id}>
                {s.name || s.email}
              </option>
            ))}
        </select>
        {labels.length > 0 && (
          <select aria-label="Label" data-testid="search-label" value={filters.label} onChange={(e) => change({ label: e.target.value })}>
            <option value="">Any label</option>
            {labels.map((l) => (
              <option key={l.id} value={l.id}>
                {l.name}
              </option>
            ))}
          </select>
        )}
        <label>
          From <input type="date" data-testid="search-since" value={filters.since} onChange={(e) => change({ since: e.target.value })} />
        </label>
        <label>
          to <input type="date" data-testid="search-until" value={filters.until} onChange={(e) => change({ until: e.target.value })} />
        </label>
      </div>
      {!results ? (
        <p className="muted pad">Searching…</p>
      ) : (
        <>
          {results.error && <p className="error pad">{results.error}</p>}
          {results.people.length > 0 && <People api={api} people={results.people} />}
          <h4 className="pad">Messages</h4>
          {results.messages.length === 0 && !results.error && (
            <p className="muted pad" data-testid="search-empty">
              No message matches.
            </p>
          )}
          <ul>
            {results.messages.map((hit) => (
              <Hit key={`${hit.kind}:${hit.message_id}`} hit={hit} active={hit.conversation_id === conversationId} />
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

function Hit({ hit, active }: { hit: MessageHit; active: boolean }) {
  const to = { screen: "inbox" as const, conversationId: hit.conversation_id, at: hit.seq };
  return (
    <li>
      <a
        href={`/dashboard/inbox/${hit.conversation_id}?at=${hit.seq}`}
        className={active ? "item active" : "item"}
        data-testid="search-hit"
        data-kind={hit.kind}
        data-conversation={hit.conversation_id}
        data-seq={hit.seq}
        onClick={(e) => {
          e.preventDefault();
          navigate(to);
        }}
      >
        <span className="who">
          <strong>{personName(hit.user)}</strong>
          <time>{when(hit.created_at)}</time>
        </span>
        <span className="preview-row">
          <span className="preview snippet" data-testid="search-snippet">
            {hit.kind === "note" && <span className="tag">note</span>}
            {hit.sender !== "user" && `${hit.author_name || "Agent"}: `}
            {snippetParts(hit.snippet_html).map((part, i) => (part.mark ? <mark key={i}>{part.text}</mark> : <span key={i}>{part.text}</span>))}
          </span>
          {hit.status === "closed" && <span className="tag">closed</span>}
        </span>
      </a>
    </li>
  );
}

/** End users found: a click opens their latest conversation beside their profile. */
function People({ api, people }: { api: Api; people: SearchUser[] }) {
  const [note, setNote] = useState<string | null>(null);
  const open = async (person: SearchUser) => {
    const { data } = await api.GET("/admin/api/users/{end_user_id}/profile", { params: { path: { end_user_id: person.id } } });
    const latest = data?.conversations[0];
    if (latest) navigate({ screen: "inbox", conversationId: latest.id, profile: true });
    else setNote(`${personName(person)} has no conversation yet.`);
  };
  return (
    <>
      <h4 className="pad">People</h4>
      <ul>
        {people.map((person) => (
          <li key={person.id}>
            <button className="item link" data-testid="search-person" onClick={() => void open(person)}>
              <strong>{personName(person)}</strong>
              {person.email && person.email !== personName(person) && <span className="muted"> · {person.email}</span>}
              {person.user_id && <span className="muted"> · {person.user_id}</span>}
            </button>
          </li>
        ))}
      </ul>
      {note && <p className="muted pad">{note}</p>}
    </>
  );
}
