// Onboarding: the sign-up page, the e-mail verification link's screen and banner, and "Get
// started": the survey, the checklist (live over the /admin socket) and the quickstarts.
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import dart from "highlight.js/lib/languages/dart";
import javascript from "highlight.js/lib/languages/javascript";
import kotlin from "highlight.js/lib/languages/kotlin";
import python from "highlight.js/lib/languages/python";
import swift from "highlight.js/lib/languages/swift";
import xml from "highlight.js/lib/languages/xml";
import { useEffect, useMemo, useState, type FormEvent } from "react";
import type { Onboarding, OnboardingStep, Quickstart } from "../../api/types";
import { type Api, errorText } from "../api";
import type { Desk } from "../desk";
import { navigate } from "../router";
import type { SessionStore } from "../session";

hljs.registerLanguage("sh", bash);
hljs.registerLanguage("dart", dart);
hljs.registerLanguage("javascript", javascript);
hljs.registerLanguage("kotlin", kotlin);
hljs.registerLanguage("python", python);
hljs.registerLanguage("swift", swift);
hljs.registerLanguage("html", xml);

const KEY_PLACEHOLDER = "YOUR_SDK_KEY";
const keyStorage = (appId: string) => `replyhq:dashboard:sdk-key:${appId}`;

/** The SDK key this browser was shown (at sign-up): keys are stored hashed on the server. */
export function rememberedKey(appId: string): string | null {
  return localStorage.getItem(keyStorage(appId));
}

export function rememberKey(appId: string, key: string): void {
  localStorage.setItem(keyStorage(appId), key);
}

export function maskKey(key: string): string {
  return key.length > 12 ? `${key.slice(0, 8)}••••••••${key.slice(-4)}` : "••••••••";
}

export const STEP_LABELS: Record<OnboardingStep["key"], string> = {
  sdk_installed: "Install the SDK: a device of your app identifies",
  first_message: "Send a first message from your app",
  identity_verified: "Verify a user's identity (user_hash)",
  teammate_invited: "Invite a teammate",
  first_reply: "Answer from the inbox",
};

const PLATFORMS: Array<{ value: string; label: string }> = [
  { value: "ios", label: "iOS" },
  { value: "android", label: "Android" },
  { value: "react-native", label: "React Native" },
  { value: "flutter", label: "Flutter" },
  { value: "web", label: "Web" },
  { value: "python", label: "Python" },
];
const USE_CASES = ["support", "sales", "onboarding", "notifications", "community", "other"];

// --- sign-up -----------------------------------------------------------------------------------

export function SignupScreen({ api, sessions }: { api: Api; sessions: SessionStore }) {
  const [form, setForm] = useState({ name: "", email: "", password: "", app_name: "" });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const field = (name: keyof typeof form) => ({
    value: form[name],
    onChange: (e: { target: { value: string } }) => setForm({ ...form, [name]: e.target.value }),
  });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const { data, error: failure } = await api.POST("/admin/signup", { body: form });
    setBusy(false);
    if (!data) {
      const details = (failure as { details?: Array<{ reason?: string }> } | undefined)?.details;
      const reason = details?.[0]?.reason;
      setError(errorText(failure, "Could not create the account.") + (reason ? ` (${reason})` : ""));
      return;
    }
    rememberKey(data.app.id, data.app.sdk_key);
    sessionStorage.setItem("replyhq:dashboard:signed-up-at", String(Date.now()));
    navigate({ screen: "get-started" }, true);
    sessions.adopt(data);
  };

  return (
    <div className="auth">
      <form className="card" onSubmit={(e) => void submit(e)} aria-label="Create an account">
        <h1>ReplyHQ</h1>
        <p className="muted">Create your account and your app: free, in a minute.</p>
        <label>
          Your name
          <input data-testid="signup-name" required autoComplete="name" {...field("name")} />
        </label>
        <label>
          Work e-mail
          <input data-testid="signup-email" type="email" required autoComplete="username" {...field("email")} />
        </label>
        <label>
          Password
          <input data-testid="signup-password" type="password" required minLength={8} autoComplete="new-password" {...field("password")} />
        </label>
        <label>
          Your app's name
          <input data-testid="signup-app" required {...field("app_name")} />
        </label>
        {error && (
          <p className="error" role="alert" data-testid="signup-error">
            {error}
          </p>
        )}
        <button className="primary" data-testid="signup-submit" disabled={busy}>
          {busy ? "Creating…" : "Create my account"}
        </button>
        <a
          href="/dashboard/login"
          className="link"
          onClick={(event) => {
            event.preventDefault();
            navigate({ screen: "login" });
          }}
        >
          I have an account: sign in
        </a>
      </form>
    </div>
  );
}

// --- e-mail verification -------------------------------------------------------------------------

export function VerifyEmailScreen({ api }: { api: Api }) {
  const [state, setState] = useState<{ ok: boolean; text: string } | null>(null);
  useEffect(() => {
    const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
    history.replaceState(history.state, "", location.pathname); // the token leaves the address bar
    void api.POST("/admin/verify-email", { body: { token } }).then(({ data, error }) => {
      if (data) setState({ ok: true, text: `${data.email} is verified. Thank you!` });
      else setState({ ok: false, text: errorText(error, "This link is not valid.") });
    });
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <div className="auth">
      <div className="card" data-testid="verify-email">
        <h1>ReplyHQ</h1>
        <p className={state && !state.ok ? "error" : ""} role="status">
          {state?.text ?? "Verifying…"}
        </p>
        <a className="link" href="/dashboard/inbox">
          Open the dashboard
        </a>
      </div>
    </div>
  );
}

export function VerifyBanner({ api, email }: { api: Api; email: string }) {
  const [sent, setSent] = useState<string | null>(null);
  const resend = async () => {
    const { data, error } = await api.POST("/admin/me/verification");
    setSent(data ? data.message : errorText(error));
  };
  return (
    <div className="banner" role="status" data-testid="verify-banner">
      Please verify {email}: follow the link we e-mailed you.{" "}
      {sent ?? (
        <button className="link" onClick={() => void resend()} data-testid="verify-resend">
          Send it again
        </button>
      )}
    </div>
  );
}

// --- get started -------------------------------------------------------------------------------

export function useOnboarding(api: Api, desk: Desk): [Onboarding | null, (o: Onboarding) => void] {
  const [state, setState] = useState<Onboarding | null>(null);
  useEffect(() => {
    let live = true;
    void api.GET("/admin/api/onboarding").then(({ data }) => live && data && setState(data));
    const stop = desk.listen("onboarding:step", (step) => {
      setState((current) =>
        current
          ? {
              ...current,
              steps: current.steps.map((s) => (s.key === step.key ? step : s)),
              complete: current.steps.every((s) => s.done || s.key === step.key),
            }
          : current,
      );
    });
    return () => {
      live = false;
      stop();
    };
  }, [api, desk]);
  return [state, setState];
}

export function GetStartedScreen({ api, desk, appId, canEdit }: { api: Api; desk: Desk; appId: string; canEdit: boolean }) {
  const [state, setState] = useOnboarding(api, desk);
  const [editing, setEditing] = useState(false);
  if (!state) return <div className="panel">Loading…</div>;
  const surveyOpen = canEdit && (editing || (!state.survey.answered_at && !state.survey.skipped_at));
  return (
    <div className="get-started" data-testid="get-started">
      <h2>Get started</h2>
      {surveyOpen ? (
        <Survey
          api={api}
          state={state}
          onDone={(next) => {
            setState(next);
            setEditing(false);
          }}
        />
      ) : (
        <>
          <Checklist api={api} state={state} onChange={setState} canEdit={canEdit} />
          <p className="muted">
            Building for {PLATFORMS.find((p) => p.value === state.survey.platform)?.label ?? "several platforms"}.{" "}
            {canEdit && (
              <button className="link" data-testid="survey-change" onClick={() => setEditing(true)}>
                Change
              </button>
            )}
          </p>
          <Quickstarts api={api} state={state} appId={appId} />
        </>
      )}
    </div>
  );
}

function Survey({ api, state, onDone }: { api: Api; state: Onboarding; onDone: (o: Onboarding) => void }) {
  const [platform, setPlatform] = useState(state.survey.platform ?? "");
  const [useCase, setUseCase] = useState<string>(state.survey.use_case ?? "support");
  const send = async (body: object) => {
    const { data } = await api.PATCH("/admin/api/onboarding/survey", { body: body as never });
    if (data) onDone(data);
  };
  return (
    <form
      className="panel survey"
      aria-label="Survey"
      data-testid="survey"
      onSubmit={(e) => {
        e.preventDefault();
        void send({ platform: platform || null, use_case: useCase });
      }}
    >
      <h3>What are you building?</h3>
      <div className="platforms" role="radiogroup" aria-label="Platform">
        {PLATFORMS.map((p) => (
          <label key={p.value} className={platform === p.value ? "platform chosen" : "platform"}>
            <input type="radio" name="platform" value={p.value} checked={platform === p.value} onChange={() => setPlatform(p.value)} data-testid={`platform-${p.value}`} />
            {p.label}
          </label>
        ))}
      </div>
      <label>
        What for?
        <select value={useCase} onChange={(e) => setUseCase(e.target.value)} data-testid="use-case">
          {USE_CASES.map((u) => (
            <option key={u} value={u}>
              {u}
            </option>
          ))}
        </select>
      </label>
      <div className="row">
        <button className="primary" data-testid="survey-submit" disabled={!platform}>
          Continue
        </button>
        <button type="button" className="link" data-testid="survey-skip" onClick={() => void send({ skipped: true })}>
          Skip for now
        </button>
      </div>
    </form>
  );
}

export function Checklist({ api, state, onChange, canEdit }: { api: Api; state: Onboarding; onChange: (o: Onboarding) => void; canEdit: boolean }) {
  const done = state.steps.filter((s) => s.done).length;
  if (state.dismissed_at) return null;
  return (
    <section className="panel checklist" aria-label="Checklist" data-testid="checklist">
      <div className="progress" aria-label={`${done} of ${state.steps.length} done`}>
        <div className="bar" style={{ width: `${(100 * done) / state.steps.length}%` }} />
      </div>
      <ol>
        {state.steps.map((step) => (
          <li key={step.key} className={step.done ? "done" : ""} data-testid={`step-${step.key}`} data-done={step.done ? "yes" : "no"}>
            <span aria-hidden>{step.done ? "✓" : "○"}</span> {STEP_LABELS[step.key]}
          </li>
        ))}
      </ol>
      {state.complete && canEdit && (
        <button
          className="link"
          data-testid="checklist-dismiss"
          onClick={() => void api.POST("/admin/api/onboarding/dismiss").then(({ data }) => data && onChange(data))}
        >
          All done: hide this checklist
        </button>
      )}
    </section>
  );
}

function Quickstarts({ api, state, appId }: { api: Api; state: Onboarding; appId: string }) {
  const [list, setList] = useState<Quickstart[]>([]);
  const [chosen, setChosen] = useState<string | null>(null);
  useEffect(() => {
    void api.GET("/admin/api/onboarding/quickstarts").then(({ data }) => data && setList(data));
  }, [api, state.survey.platform]);
  const current = list.find((q) => q.platform === chosen) ?? list[0];
  const key = rememberedKey(appId);
  if (!current) return null;
  const done = (step: string | null | undefined) => !step || state.steps.find((s) => s.key === step)?.done;
  return (
    <section className="panel quickstarts" aria-label="Quickstarts">
      <div className="tabs" role="tablist">
        {list.map((q) => (
          <button key={q.platform} role="tab" aria-selected={q === current} className={q === current ? "tab active" : "tab"} onClick={() => setChosen(q.platform)} data-testid={`quickstart-${q.platform}`}>
            {q.title}
          </button>
        ))}
      </div>
      {!current.executed && (
        <p className="muted" data-testid="not-run">
          This snippet is not run by our tests (no {current.title} toolchain on our build machines); it follows the
          protocol of the realtime docs.
        </p>
      )}
      {!key && (
        <p className="muted">
          Your SDK key was shown once, when the app was made; paste it in place of {KEY_PLACEHOLDER}, or rotate the keys in
          Settings.
        </p>
      )}
      {current.steps.map((step, index) => (
        <div className="qs-step" key={index} data-testid={`qs-step-${index}`}>
          <p>
            {index + 1}. {step.title}
          </p>
          <Code language={step.language} code={step.code} sdkKey={key} />
          {step.waits_for && (
            <p className={done(step.waits_for) ? "check ok" : "check waiting"} data-testid={`waiting-${step.waits_for}`} data-done={done(step.waits_for) ? "yes" : "no"}>
              {done(step.waits_for) ? "✓ Received from your app" : "Waiting for your app…"}
            </p>
          )}
        </div>
      ))}
      <a className="link" href={current.docs}>
        Documentation
      </a>
    </section>
  );
}

function Code({ language, code, sdkKey }: { language: string; code: string; sdkKey: string | null }) {
  const [copied, setCopied] = useState(false);
  const full = sdkKey ? code.split(KEY_PLACEHOLDER).join(sdkKey) : code;
  const shown = sdkKey ? code.split(KEY_PLACEHOLDER).join(maskKey(sdkKey)) : code;
  const html = useMemo(
    () => (hljs.getLanguage(language) ? hljs.highlight(shown, { language }).value : hljs.highlightAuto(shown).value),
    [shown, language],
  );
  return (
    <div className="code">
      <pre>
        {/* highlight.js escapes the text it is given: its output is safe to insert */}
        <code className="hljs" dangerouslySetInnerHTML={{ __html: html }} />
      </pre>
      <button
        className="copy"
        data-testid="copy-code"
        onClick={() => {
          void navigator.clipboard.writeText(full).then(() => {
            setCopied(true);
            setTimeout(() => setCopied(false), 1500);
          });
        }}
      >
        {copied ? "Copied" : "Copy"}
      </button>
    </div>
  );
}
