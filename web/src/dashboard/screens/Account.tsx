import { useEffect, useState, type FormEvent } from "react";
import type { Me, NotificationPrefs } from "../../api/types";
import { type Api, errorText } from "../api";
import type { DeskNotifier } from "../notify";

/** Desktop notifications and their sound while the dashboard's tab is hidden, per member. */
function NotificationSettings({ notifier }: { notifier: DeskNotifier }) {
  const [prefs, setPrefs] = useState<NotificationPrefs | null>(null);
  const [permission, setPermission] = useState(typeof Notification === "undefined" ? "unsupported" : Notification.permission);
  useEffect(() => {
    void notifier.load().then(() => setPrefs({ ...notifier.prefs }));
  }, [notifier]);
  const change = async (changes: Partial<NotificationPrefs>) => {
    setPrefs((current) => (current ? { ...current, ...changes } : current)); // at once; then as stored
    setPrefs({ ...(await notifier.update(changes)) });
    if (typeof Notification !== "undefined") setPermission(Notification.permission);
  };
  if (!prefs) return <p className="muted">Loading…</p>;
  return (
    <>
      <label className="check">
        <input type="checkbox" data-testid="notify-desktop" checked={prefs.desktop} onChange={(e) => void change({ desktop: e.target.checked })} />
        Desktop notifications for new conversations and messages (yours or unassigned) while this tab is hidden
      </label>
      <label className="check">
        <input type="checkbox" data-testid="notify-sound" checked={prefs.sound} onChange={(e) => void change({ sound: e.target.checked })} />
        Play a sound with them
      </label>
      {prefs.desktop && permission !== "granted" && (
        <p className="muted" data-testid="notify-permission">
          {permission === "denied"
            ? "This browser blocks notifications from this site: allow them in its site settings."
            : permission === "unsupported"
              ? "This browser cannot show desktop notifications."
              : "Your browser will ask to allow notifications."}
        </p>
      )}
    </>
  );
}

/** /dashboard/account: who you are, your notifications, and changing the address you sign in with. */
export function AccountScreen({ api, me, notifier }: { api: Api; me: Me; notifier: DeskNotifier }) {
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
      {me.staff && (
        <section className="panel" data-testid="notifications">
          <h2>Notifications</h2>
          <NotificationSettings notifier={notifier} />
        </section>
      )}
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
