// Beside a conversation: where the visitor is (page, referrer, browser, OS, from the web
// messenger) and their satisfaction ratings, one per closing.
import { useEffect, useState } from "react";
import type { components } from "../../api/schema";
import type { InboxConversation } from "../../api/types";
import type { Api } from "../api";

type Context = components["schemas"]["VisitorContextOut"];
type Rating = components["schemas"]["RatingOut"];

export function VisitorPanel({ api, conversation }: { api: Api; conversation: InboxConversation }) {
  const [context, setContext] = useState<Context | null>(null);
  const [ratings, setRatings] = useState<Rating[]>([]);
  const path = { params: { path: { conversation_id: conversation.id } } };
  // Read again when the conversation moves (a closing, a new message): a rating follows a closing.
  useEffect(() => {
    let live = true;
    void api.GET("/admin/api/conversations/{conversation_id}/context", path).then(({ data }) => live && setContext(data ?? null));
    void api.GET("/admin/api/conversations/{conversation_id}/ratings", path).then(({ data }) => live && setRatings(data ?? []));
    const timer = conversation.status === "closed" ? setInterval(() => void api.GET("/admin/api/conversations/{conversation_id}/ratings", path).then(({ data }) => live && data && setRatings(data)), 5000) : undefined;
    return () => {
      live = false;
      if (timer) clearInterval(timer);
    };
  }, [api, conversation.id, conversation.status, conversation.last_seq]);

  return (
    <div data-testid="visitor">
      <h4>Visitor</h4>
      {context ? (
        <dl data-testid="visitor-context">
          <dt>Page</dt>
          <dd>
            <a href={context.page_url ?? undefined} target="_blank" rel="noreferrer noopener" data-testid="visitor-page">
              {context.page_title || context.page_url || "—"}
            </a>
          </dd>
          <dt>Referrer</dt>
          <dd data-testid="visitor-referrer">{context.referrer ?? "—"}</dd>
          <dt>Browser</dt>
          <dd data-testid="visitor-browser">{context.browser ?? "—"}</dd>
          <dt>OS</dt>
          <dd data-testid="visitor-os">{context.os ?? "—"}</dd>
        </dl>
      ) : (
        <p className="muted">No page reported.</p>
      )}
      <h4>Satisfaction</h4>
      {ratings.length > 0 ? (
        <ul className="ratings" data-testid="ratings">
          {ratings.map((r) => (
            <li key={r.id} data-testid="rating" data-score={r.score}>
              <span aria-label={`${r.score} out of 5`}>{"★".repeat(r.score) + "☆".repeat(5 - r.score)}</span>
              {r.comment && <q>{r.comment}</q>}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">Not rated.</p>
      )}
    </div>
  );
}
