import { useState, type FormEvent } from "react";
import { type Api, errorText } from "../api";
import { navigate } from "../router";
import type { SessionStore } from "../session";

/** /dashboard/invite#token=…: join a team (the token stays in the fragment, never sent as a URL). */
export function InviteScreen({ api, sessions }: { api: Api; sessions: SessionStore }) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const { data, error: failure } = await api.POST("/admin/invites/accept", { body: { token, name, password } });
    if (!data) {
      setError(errorText(failure, "The invitation could not be accepted."));
      return;
    }
    sessions.adopt(data);
    history.replaceState(null, "", "/dashboard/inbox");
    navigate({ screen: "inbox", conversationId: null }, true);
  };

  return (
    <div className="auth">
      <form className="card" onSubmit={(e) => void submit(e)}>
        <h1>Join your team</h1>
        {!token && <p className="error">This link has no invitation token.</p>}
        <label>
          Your name
          <input required data-testid="invite-name" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Choose a password (8 characters or more)
          <input type="password" data-testid="invite-password" minLength={8} required autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {error && <p className="error">{error}</p>}
        <button className="primary" data-testid="invite-submit" disabled={!token}>
          Join
        </button>
      </form>
    </div>
  );
}
