import { useState, type FormEvent } from "react";
import { type Api, errorText } from "../api";
import { navigate } from "../router";
import type { SessionStore } from "../session";

interface AppChoice {
  id: string;
  name: string;
}

export function LoginScreen({ api, sessions }: { api: Api; sessions: SessionStore }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [apps, setApps] = useState<AppChoice[] | null>(null);
  const [appId, setAppId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const { data, error: failure } = await api.POST("/admin/login", {
      body: { email, password, ...(appId ? { app_id: appId } : {}) },
    });
    setBusy(false);
    if (data) {
      sessions.adopt(data);
      return;
    }
    const body = failure as { code?: string; apps?: AppChoice[] } | undefined;
    if (body?.code === "APP_REQUIRED" && body.apps) {
      setApps(body.apps);
      setAppId(body.apps[0]?.id ?? null);
      setError("This address belongs to several apps: choose one.");
      return;
    }
    setError(errorText(failure, "Could not sign in."));
  };

  return (
    <div className="auth">
      <form className="card" onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <h1>ReplyHQ</h1>
        <p className="muted">Sign in to answer your customers.</p>
        <label>
          E-mail
          <input data-testid="login-email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Password
          <input data-testid="login-password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {apps && (
          <label>
            App
            <select value={appId ?? ""} onChange={(e) => setAppId(e.target.value)}>
              {apps.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name}
                </option>
              ))}
            </select>
          </label>
        )}
        {error && (
          <p className="error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button className="primary" data-testid="login-submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <a
          href="/dashboard/forgot-password"
          className="link"
          data-testid="forgot-password"
          onClick={(event) => {
            event.preventDefault();
            navigate({ screen: "forgot-password" });
          }}
        >
          Forgot password?
        </a>
        <a
          href="/dashboard/signup"
          className="link"
          data-testid="create-account"
          onClick={(event) => {
            event.preventDefault();
            navigate({ screen: "signup" });
          }}
        >
          Create an account
        </a>
      </form>
    </div>
  );
}
