// Billing: the plan, its status and trial countdown, this month's usage against the limits, and
// (for the OWNER) upgrading through Stripe Checkout after a proration preview, or managing the
// card in Stripe's portal. Back from Checkout (?checkout=success) it waits for Stripe's webhook.
import { useCallback, useEffect, useState } from "react";
import type { Billing, BillingPreview, Me, PlanKey } from "../../api/types";
import { type Api, errorText } from "../api";

const STATUS: Record<string, string> = {
  trialing: "Free trial",
  trial_ended: "Trial ended",
  active: "Active",
  past_due: "Payment failed",
  canceled: "Canceled",
};

function money(cents: number, currency = "usd"): string {
  return new Intl.NumberFormat("en-US", { style: "currency", currency: currency.toUpperCase() }).format(cents / 100);
}

function day(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" }) : "";
}

function daysLeft(iso: string): number {
  return Math.max(0, Math.ceil((new Date(iso).getTime() - Date.now()) / 86_400_000));
}

export function BillingScreen({ api, me }: { api: Api; me: Me }) {
  const canWrite = me.permissions.includes("billing:write");
  const [billing, setBilling] = useState<Billing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [choice, setChoice] = useState<PlanKey | null>(null);
  const [preview, setPreview] = useState<BillingPreview | null>(null);
  const [busy, setBusy] = useState(false);
  const query = new URLSearchParams(location.search);
  const returning = query.get("checkout") === "success";
  // Back from the portal: what was changed there arrives by webhook within seconds.
  const [fromPortal, setFromPortal] = useState(query.get("from") === "portal");
  const [waiting, setWaiting] = useState(returning);

  const load = useCallback(async () => {
    const { data, error: failure } = await api.GET("/admin/api/billing");
    if (!data) return setError(errorText(failure));
    setBilling(data);
    return data;
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  // Back from Checkout: the plan shows once Stripe's webhook has been applied.
  useEffect(() => {
    if (!waiting) return;
    const timer = setInterval(() => {
      void load().then((data) => {
        if (data && data.plan) setWaiting(false);
      });
    }, 1000);
    const giveUp = setTimeout(() => setWaiting(false), 60_000);
    return () => {
      clearInterval(timer);
      clearTimeout(giveUp);
    };
  }, [waiting, load]);

  useEffect(() => {
    if (!fromPortal) return;
    const timer = setInterval(() => void load(), 1000);
    const stop = setTimeout(() => setFromPortal(false), 15_000);
    return () => {
      clearInterval(timer);
      clearTimeout(stop);
    };
  }, [fromPortal, load]);

  const choose = async (plan: PlanKey) => {
    setChoice(plan);
    setPreview(null);
    setError(null);
    const { data, error: failure } = await api.GET("/admin/api/billing/preview", { params: { query: { plan } } });
    if (!data) return setError(errorText(failure));
    setPreview(data);
  };

  const confirm = async () => {
    if (!choice) return;
    setBusy(true);
    const { data, error: failure } = await api.POST("/admin/api/billing/checkout", { body: { plan: choice } });
    setBusy(false);
    if (!data) return setError(errorText(failure));
    if (new URL(data.url, location.href).origin === location.origin) {
      // A plan change made at once: no payment page.
      setChoice(null);
      setPreview(null);
      await load();
      return;
    }
    location.assign(data.url);
  };

  const portal = async () => {
    setBusy(true);
    const { data, error: failure } = await api.POST("/admin/api/billing/portal");
    setBusy(false);
    if (!data) return setError(errorText(failure));
    location.assign(data.url);
  };

  if (!billing) return <div className="page muted">{error ?? "Loading…"}</div>;
  if (!billing.enabled) {
    return (
      <div className="page" data-testid="billing">
        <h1>Billing</h1>
        <p className="muted" data-testid="billing-off">
          Billing is off on this server (no Stripe key is configured): nothing is limited.
        </p>
      </div>
    );
  }
  const current = billing.plans.find((p) => p.key === billing.plan) ?? null;
  const status = billing.status ?? "trialing";
  const inTrial = status === "trialing" && !current;
  return (
    <div className="page" data-testid="billing">
      <h1>Billing</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {waiting && (
        <p className="muted" data-testid="billing-waiting">
          Payment received: your plan shows here as soon as Stripe confirms it.
        </p>
      )}
      {billing.notice && (
        <p className={billing.can_start_conversations ? "warning" : "error"} data-testid="billing-notice">
          {billing.notice}
        </p>
      )}
      <section className="panel" data-testid="billing-plan">
        <h2>Plan</h2>
        <p>
          <strong data-testid="billing-plan-name">{current ? current.name : "No plan yet"}</strong>{" "}
          <span className={`status status-${status}`} data-testid="billing-status">
            {STATUS[status] ?? status}
          </span>
        </p>
        {inTrial && billing.trial_ends_at && (
          <p data-testid="trial-countdown">
            {daysLeft(billing.trial_ends_at)} days left in your free trial (it ends on {day(billing.trial_ends_at)}).
          </p>
        )}
        {current && billing.current_period_end && (
          <p className="muted" data-testid="billing-period">
            {billing.cancel_at_period_end ? "Cancels" : status === "trialing" ? "First payment" : "Renews"} on {day(billing.current_period_end)}.
          </p>
        )}
        {canWrite && current && (
          <button data-testid="billing-portal" disabled={busy} onClick={() => void portal()}>
            Manage payment
          </button>
        )}
      </section>
      <section className="panel" data-testid="billing-usage">
        <h2>Usage this month</h2>
        {billing.usage && billing.limits && (
          <>
            <UsageBar label="Messages" used={billing.usage.messages} limit={billing.limits.messages} testid="usage-messages" />
            <UsageBar label="Monthly active users" used={billing.usage.mau} limit={billing.limits.mau} testid="usage-mau" />
          </>
        )}
      </section>
      <section className="panel" data-testid="billing-plans">
        <h2>Plans</h2>
        <div className="plans">
          {billing.plans.map((plan) => (
            <div className={plan.key === billing.plan ? "plan current" : "plan"} key={plan.key} data-testid={`plan-${plan.key}`}>
              <h3>{plan.name}</h3>
              <p className="price">{money(plan.monthly_usd * 100)} a month</p>
              <p className="muted">
                {plan.limits.mau.toLocaleString("en-US")} monthly active users, {plan.limits.messages.toLocaleString("en-US")} messages
              </p>
              {plan.key === billing.plan ? (
                <span className="muted">Your plan</span>
              ) : (
                canWrite && (
                  <button className="primary" data-testid={`choose-${plan.key}`} disabled={busy} onClick={() => void choose(plan.key)}>
                    {current ? `Switch to ${plan.name}` : `Choose ${plan.name}`}
                  </button>
                )
              )}
            </div>
          ))}
        </div>
        {!canWrite && <p className="muted">Only an owner of the app can change its plan.</p>}
        {choice && preview && (
          <div className="preview" data-testid="billing-preview">
            <p>
              <strong>Due now: {money(preview.amount_due, preview.currency)}</strong>
              {preview.proration !== 0 && <> (prorated: {money(preview.proration, preview.currency)} for the rest of this period)</>}
              {preview.next_payment_at && <> · then {money(billing.plans.find((p) => p.key === choice)!.monthly_usd * 100)} a month</>}
            </p>
            <ul className="muted">
              {preview.lines.map((line, index) => (
                <li key={index}>
                  {line.description}: {money(line.amount, preview.currency)}
                </li>
              ))}
            </ul>
            <button className="primary" data-testid="billing-confirm" disabled={busy} onClick={() => void confirm()}>
              {current ? "Confirm the change" : "Continue to payment"}
            </button>{" "}
            <button
              className="link"
              onClick={() => {
                setChoice(null);
                setPreview(null);
              }}
            >
              Cancel
            </button>
          </div>
        )}
      </section>
    </div>
  );
}

function UsageBar({ label, used, limit, testid }: { label: string; used: number; limit: number; testid: string }) {
  const percent = Math.min(100, Math.round((used / Math.max(1, limit)) * 100));
  const level = percent >= 100 ? "full" : percent >= 80 ? "high" : "ok";
  return (
    <div className="usage" data-testid={testid}>
      <div className="usage-label">
        <span>{label}</span>
        <span>
          {used.toLocaleString("en-US")} / {limit.toLocaleString("en-US")} ({percent} %)
        </span>
      </div>
      <div className={`bar bar-${level}`} role="progressbar" aria-valuenow={used} aria-valuemin={0} aria-valuemax={limit} aria-label={label}>
        <div style={{ width: `${percent}%` }} />
      </div>
    </div>
  );
}

/** The app-wide banner: the billing notice (trial ending, limits, a failed payment), for those
 * who may read billing. */
export function BillingBanner({ api, onOpen }: { api: Api; onOpen: () => void }) {
  const [billing, setBilling] = useState<Billing | null>(null);
  useEffect(() => {
    let stopped = false;
    const load = () =>
      void api.GET("/admin/api/billing").then(({ data }) => {
        if (!stopped && data) setBilling(data);
      });
    load();
    const timer = setInterval(load, 60_000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [api]);
  if (!billing?.enabled || !billing.notice) return null;
  const urgent = !billing.can_start_conversations || billing.warnings.length > 0 || billing.status === "past_due";
  return (
    <div className={urgent ? "banner banner-urgent" : "banner"} data-testid="billing-banner" role="status">
      <span>{billing.notice}</span>{" "}
      <button className="link" onClick={onOpen} data-testid="billing-banner-open">
        Billing
      </button>
    </div>
  );
}
