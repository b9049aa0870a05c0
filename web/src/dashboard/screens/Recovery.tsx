import { useState, type FormEvent } from "react";
import { type Api, errorText } from "../api";
import { navigate } from "../router";
import type { SessionStore } from "../session";

/** The token of an e-mailed link: in the fragment, so it never reaches a server in a URL. */
function linkToken(): string {
  return new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
}

function BackToSignIn() {
  return (
    <a
      href="/dashboard/login"
      className="link"
      data-testid="back-to-sign-in"
      onClick={(event) => {
        event.preventDefault();
        navigate({ screen: "login" });
      }}
    >
      Back to sign in
    </a>
  );
}

/** /dashboard/forgot-password: ask for a reset link (the same answer for any address). */
export function ForgotPasswordScreen({ api }: { api: Api }) {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const { data, error: failure } = await api.POST("/admin/password-reset", { body: { email } });
    setBusy(false);
    if (data) setSent(data.message);
    else setError(errorText(failure, "Could not send the link; try again."));
  };

  return (
    <div className="auth">
      <form className="card" onSubmit={(e) => void submit(e)} aria-label="Reset your password">
        <h1>Forgot your password?</h1>
        {sent ? (
          <p role="status" data-testid="reset-requested">
            {sent} Check your inbox, and follow the link within 30 minutes.
          </p>
        ) : (
          <>
            <p className="muted">Enter the address you sign in with; we will e-mail you a link to choose a new password.</p>
            <label>
              E-mail
              <input data-testid="reset-email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
            </label>
            {error && (
              <p className="error" role="alert">
                {error}
              </p>
            )}
            <button className="primary" data-testid="reset-request" disabled={busy}>
              {busy ? "Sending…" : "Send me a link"}
            </button>
          </>
        )}
        <BackToSignIn />
      </form>
    </div>
  );
}

/** /dashboard/reset-password#token=…: choose a new password; every sign-in ends. */
export function ResetPasswordScreen({ api, sessions }: { api: Api; sessions: SessionStore }) {
  const token = linkToken();
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (password !== again) return setError("The two passwords differ.");
    const { response, error: failure } = await api.POST("/admin/password-reset/confirm", { body: { token, password } });
    if (!response.ok) return setError(errorText(failure, "The password could not be changed."));
    history.replaceState(null, "", "/dashboard/reset-password"); // the spent token leaves the address bar
    sessions.clear(); // this browser's sign-in ended with the others
    setDone(true);
  };

  if (done) {
    return (
      <div className="auth">
        <div className="card">
          <h1>Password changed</h1>
          <p role="status" data-testid="reset-done">
            Your new password is set, and you were signed out everywhere. Sign in with it.
          </p>
          <button className="primary" data-testid="reset-sign-in" onClick={() => navigate({ screen: "login" })}>
            Sign in
          </button>
        </div>
      </div>
    );
  }
  return (
    <div className="auth">
      <form className="card" onSubmit={(e) => void submit(e)} aria-label="Choose a new password">
        <h1>Choose a new password</h1>
        {!token && <p className="error">This link has no reset token: open the link from the e-mail again.</p>}
        <label>
          New password (8 characters or more)
          <input type="password" data-testid="reset-password" minLength={8} required autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <label>
          The same again
          <input type="password" data-testid="reset-password-again" minLength={8} required autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} />
        </label>
        {error && (
          <p className="error" role="alert" data-testid="reset-error">
            {error}
          </p>
        )}
        <button className="primary" data-testid="reset-submit" disabled={!token}>
          Set the password
        </button>
        <BackToSignIn />
      </form>
    </div>
  );
}

/** /dashboard/confirm-email#token=…: the link sent to a new address; only now does it apply. */
export function ConfirmEmailScreen({ api }: { api: Api }) {
  const token = linkToken();
  const [email, setEmail] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const confirm = async () => {
    const { data, error: failure } = await api.POST("/admin/email-change/confirm", { body: { token } });
    if (!data) return setError(errorText(failure, "The address could not be confirmed."));
    history.replaceState(null, "", "/dashboard/confirm-email");
    setEmail(data.email);
  };

  return (
    <div className="auth">
      <div className="card">
        <h1>Confirm your new address</h1>
        {email ? (
          <p role="status" data-testid="email-confirmed">
            Done: you now sign in with {email}.
          </p>
        ) : (
          <>
            {!token && <p className="error">This link has no token: open the link from the e-mail again.</p>}
            <p className="muted">Your sign-in address changes once you confirm.</p>
            <button className="primary" data-testid="email-confirm" disabled={!token} onClick={() => void confirm()}>
              Confirm
            </button>
          </>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <a href="/dashboard/inbox" className="link">
          Go to the dashboard
        </a>
      </div>
    </div>
  );
}
