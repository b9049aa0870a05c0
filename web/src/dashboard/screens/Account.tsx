import { useState, type FormEvent } from "react";
import type { Me } from "../../api/types";
import { type Api, errorText } from "../api";

/** /dashboard/account: who you are, and changing the address you sign in with. */
export function AccountScreen({ api, me }: { api: Api; me: Me }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const { data, error: failure } = await api.POST("/admin/me/email", { body: { email, password } });
    setPassword("");
    if (!data) return setError(errorText(failure, "The address could not be changed."));
    setError(null);
    setSentTo(data.email);
  };

  return (
    <div className="page" data-testid="account">
      <h1>Your account</h1>
      <section className="panel">
        <p>
          {me.staff?.name} · <span data-testid="account-email">{me.staff?.email}</span> · {me.role}
        </p>
      </section>
      <section className="panel">
        <h2>Change your e-mail address</h2>
        {sentTo && (
          <p role="status" data-testid="email-change-sent">
            We sent a link to {sentTo}. Your address changes when you follow it; until then, keep signing in with {me.staff?.email}.
          </p>
        )}
        <form onSubmit={(e) => void submit(e)} aria-label="Change your e-mail address">
          <label>
            New address
            <input type="email" required data-testid="new-email" value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <label>
            Your current password
            <input type="password" required autoComplete="current-password" data-testid="email-password" value={password} onChange={(e) => setPassword(e.target.value)} />
          </label>
          {error && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
          <button className="primary" data-testid="email-change-submit">
            Send a confirmation link
          </button>
        </form>
      </section>
    </div>
  );
}
