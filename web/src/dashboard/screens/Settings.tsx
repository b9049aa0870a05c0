import { useEffect, useState } from "react";
import type { AppSettings, AppWithKeys, Me } from "../../api/types";
import { type Api, errorText } from "../api";
import { MessengerSettings } from "./MessengerSettings";
import { rememberKey } from "./Onboarding";

export function SettingsScreen({ api, me }: { api: Api; me: Me }) {
  const can = (p: string) => me.permissions.includes(p);
  const [app, setApp] = useState<AppSettings | null>(null);
  const [name, setName] = useState("");
  const [keys, setKeys] = useState<AppWithKeys | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);

  useEffect(() => {
    void api.GET("/admin/api/app").then(({ data }) => {
      if (data) {
        setApp(data);
        setName(data.name);
      }
    });
  }, [api]);

  const save = async (change: { name?: string; identity_verification_required?: boolean }) => {
    const { data, error: failure } = await api.PATCH("/admin/api/app", { body: change });
    if (!data) return setError(errorText(failure));
    setError(null);
    setApp(data);
    setSaved(true);
  };
  const rotate = async () => {
    if (!confirm("Rotate the keys? The current SDK key, secret key and identity secret stop working at once, and every connected device is disconnected.")) return;
    const { data, error: failure } = await api.POST("/admin/api/app/rotate-keys");
    if (!data) return setError(errorText(failure));
    setError(null);
    setKeys(data);
    rememberKey(data.id, data.sdk_key); // the quickstarts fill it in (keys are stored hashed)
  };

  if (!app) return <div className="page muted">Loading…</div>;
  return (
    <div className="page" data-testid="settings">
      <h1>App settings</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <section className="panel">
        <h2>App</h2>
        <p className="muted">
          App id <code data-testid="app-id">{app.id}</code>
        </p>
        <label>
          Name
          <span className="inline">
            <input value={name} disabled={!can("settings:write")} onChange={(e) => setName(e.target.value)} data-testid="app-name" />
            {can("settings:write") && (
              <button onClick={() => void save({ name })} disabled={!name.trim() || name === app.name}>
                Save
              </button>
            )}
          </span>
        </label>
        {saved && <p className="muted">Saved.</p>}
      </section>
      <MessengerSettings api={api} canWrite={can("settings:write")} />
      <section className="panel">
        <h2>Identity verification</h2>
        <label className="check">
          <input
            type="checkbox"
            data-testid="require-identity"
            checked={app.identity_verification_required}
            disabled={!can("settings:write")}
            onChange={(e) => void save({ identity_verification_required: e.target.checked })}
          />
          <span>
            Require verified end users (<code>user_id</code> + <code>user_hash</code> computed on your server); anonymous visitors are refused.
          </span>
        </label>
      </section>
      <section className="panel">
        <h2>Allowed origins</h2>
        <p className="muted">
          The websites allowed to run the messenger are a deployment setting of this ReplyHQ server (<code>ALLOWED_ORIGINS</code>), shared by every app; ask
          your operator to add your site's origin.
        </p>
      </section>
      {can("keys:rotate") && (
        <section className="panel" data-testid="keys">
          <h2>Keys</h2>
          <p className="muted">Keys are shown once, when they are made. Rotate them if one may have leaked.</p>
          <button className="danger" data-testid="rotate-keys" onClick={() => void rotate()}>
            Rotate keys
          </button>
          {keys && <p className="warning">New keys: store them now, they will not be shown again.</p>}
          {keys && (
            <dl className="keys" data-testid="new-keys">
              <dt>SDK key</dt>
              <dd>
                <code data-testid="new-sdk-key">{keys.sdk_key}</code>
              </dd>
              <dt>Secret key</dt>
              <dd>
                <code>{keys.secret_key}</code>
              </dd>
              <dt>Identity secret</dt>
              <dd>
                <code>{keys.identity_secret}</code>
              </dd>
            </dl>
          )}
        </section>
      )}
    </div>
  );
}
