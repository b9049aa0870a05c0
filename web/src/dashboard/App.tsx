import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { Me } from "../api/types";
import { createApi } from "./api";
import { Desk } from "./desk";
import { navigate, useRoute } from "./router";
import { InboxScreen } from "./screens/Inbox";
import { AccountScreen } from "./screens/Account";
import { InviteScreen } from "./screens/Invite";
import { LoginScreen } from "./screens/Login";
import { NeedsRoleScreen } from "./screens/NeedsRole";
import { ConfirmEmailScreen, ForgotPasswordScreen, ResetPasswordScreen } from "./screens/Recovery";
import { SettingsScreen } from "./screens/Settings";
import { BillingBanner, BillingScreen } from "./screens/Billing";
import { TeamScreen } from "./screens/Team";
import { ConsoleScreen } from "./screens/Console";
import { GetStartedScreen, SignupScreen, VerifyBanner, VerifyEmailScreen } from "./screens/Onboarding";
import { ConnectionBadge, UnreadTitle } from "./components";
import { SessionStore } from "./session";
import { DeskNotifier } from "./notify";
import { ReportsScreen } from "./screens/Reports";
import { AvailabilityToggle } from "./workspace";
import { SegmentsScreen } from "./screens/Segments";
import { MessagesScreen } from "./screens/Messages";

const sessions = new SessionStore();
const api = createApi(sessions);

function useSession() {
  return useSyncExternalStore(
    (l) => sessions.subscribe(l),
    () => sessions.current,
  );
}

export function App() {
  const session = useSession();
  const route = useRoute();
  if (route.screen === "invite") return <InviteScreen api={api} sessions={sessions} />;
  // Opened from e-mailed links, signed in or not.
  if (route.screen === "reset-password") return <ResetPasswordScreen api={api} sessions={sessions} />;
  if (route.screen === "confirm-email") return <ConfirmEmailScreen api={api} />;
  if (route.screen === "verify-email") return <VerifyEmailScreen api={api} />;
  if (!session && route.screen === "signup") return <SignupScreen api={api} sessions={sessions} />;
  if (!session && route.screen === "forgot-password") return <ForgotPasswordScreen api={api} />;
  if (!session) return <LoginScreen api={api} sessions={sessions} />;
  return <SignedIn key={session.staff.id} />;
}

function SignedIn() {
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [failed, setFailed] = useState(false);

  const loadMe = useCallback(async () => {
    const { data } = await api.GET("/admin/me");
    if (data) setMe(data);
    else setFailed(true);
  }, []);

  useEffect(() => {
    void loadMe();
  }, [loadMe]);

  const desk = useMemo(() => (me ? new Desk(api, sessions, me, () => void loadMe()) : null), [me !== null]); // eslint-disable-line react-hooks/exhaustive-deps
  const notifier = useMemo(() => (me ? new DeskNotifier(api, me.staff?.id ?? null) : null), [me !== null]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (!desk || !notifier) return;
    void notifier.load();
    desk.onIncoming = (message, conversation) => notifier.incoming(message, conversation);
    desk.start();
    return () => desk.stop();
  }, [desk, notifier]);
  useEffect(() => {
    if (desk && me) desk.setMe(me);
  }, [desk, me]);

  useEffect(() => {
    if (route.screen === "login" || route.screen === "forgot-password" || route.screen === "signup") navigate({ screen: "inbox", conversationId: null }, true);
  }, [route.screen]);

  if (!me || !desk || !notifier) {
    return <div className="splash">{failed ? "Could not load your account." : "Loading…"}</div>;
  }
  const can = (permission: string) => me.permissions.includes(permission);
  const name = me.staff?.name || me.staff?.email || "";
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Main">
        <div className="brand">ReplyHQ</div>
        <NavLink active={route.screen === "inbox"} to={{ screen: "inbox", conversationId: null }} testid="nav-inbox">
          Inbox
        </NavLink>
        <NavLink active={route.screen === "get-started"} to={{ screen: "get-started" }} testid="nav-get-started">
          Get started
        </NavLink>
        {can("settings:read") && (
          <NavLink active={route.screen === "console"} to={{ screen: "console" }} testid="nav-console">
            Test console
          </NavLink>
        )}
        {can("team:read") && (
          <NavLink active={route.screen === "team"} to={{ screen: "team" }} testid="nav-team">
            Team
          </NavLink>
        )}
        {can("settings:read") && (
          <NavLink active={route.screen === "settings"} to={{ screen: "settings" }} testid="nav-settings">
            Settings
          </NavLink>
        )}
        {can("users:read") && (
          <NavLink active={route.screen === "segments"} to={{ screen: "segments" }} testid="nav-segments">
            Segments
          </NavLink>
        )}
        {can("users:read") && (
          <NavLink active={route.screen === "messages"} to={{ screen: "messages" }} testid="nav-messages">
            Messages
          </NavLink>
        )}
        {can("reports:read") && (
          <NavLink active={route.screen === "reports"} to={{ screen: "reports" }} testid="nav-reports">
            Reports
          </NavLink>
        )}
        {can("billing:read") && (
          <NavLink active={route.screen === "billing"} to={{ screen: "billing" }} testid="nav-billing">
            Billing
          </NavLink>
        )}
        <div className="spacer" />
        <ConnectionBadge desk={desk} />
        <UnreadTitle desk={desk} />
        {me.staff && <AvailabilityToggle api={api} desk={desk} staffId={me.staff.id} />}
        <div className="me" data-testid="me">
          <strong>{name}</strong>
          <span className="role" data-testid="my-role">
            {me.role}
          </span>
        </div>
        <NavLink active={route.screen === "account"} to={{ screen: "account" }} testid="nav-account">
          Your account
        </NavLink>
        <button className="link" data-testid="logout" onClick={() => void sessions.logout()}>
          Log out
        </button>
      </nav>
      <main className="content">
        {me.staff && !me.staff.email_verified_at && <VerifyBanner api={api} email={me.staff.email} />}
        {can("billing:read") && route.screen !== "billing" && <BillingBanner api={api} onOpen={() => navigate({ screen: "billing" })} />}
        {route.screen === "segments" ? (
          can("users:read") ? <SegmentsScreen api={api} canWrite={can("segments:write")} /> : <NeedsRoleScreen me={me} screen="segments" />
        ) : route.screen === "messages" ? (
          can("users:read") ? <MessagesScreen api={api} me={me} /> : <NeedsRoleScreen me={me} screen="messages" />
        ) : route.screen === "reports" ? (
          can("reports:read") ? <ReportsScreen api={api} sessions={sessions} /> : <NeedsRoleScreen me={me} screen="reports" />
        ) : route.screen === "billing" ? (
          can("billing:read") ? <BillingScreen api={api} me={me} /> : <NeedsRoleScreen me={me} screen="billing" />
        ) : route.screen === "team" ? (
          can("team:read") ? <TeamScreen api={api} me={me} /> : <NeedsRoleScreen me={me} screen="team" />
        ) : route.screen === "settings" ? (
          can("settings:read") ? <SettingsScreen api={api} me={me} /> : <NeedsRoleScreen me={me} screen="settings" />
        ) : route.screen === "account" ? (
          <AccountScreen api={api} me={me} notifier={notifier} />
        ) : route.screen === "get-started" ? (
          <GetStartedScreen api={api} desk={desk} appId={me.app_id} canEdit={can("settings:write")} />
        ) : route.screen === "console" ? (
          can("settings:read") ? <ConsoleScreen desk={desk} /> : <NeedsRoleScreen me={me} screen="console" />
        ) : (
          <InboxScreen
            desk={desk}
            api={api}
            me={me}
            conversationId={route.screen === "inbox" ? route.conversationId : null}
            profile={route.screen === "inbox" && Boolean(route.profile)}
            at={route.screen === "inbox" ? route.at : undefined}
          />
        )}
      </main>
    </div>
  );
}

function NavLink({ to, active, children, testid }: { to: Parameters<typeof navigate>[0]; active: boolean; children: string; testid: string }) {
  return (
    <a
      href={"/dashboard/" + (to.screen === "inbox" ? "inbox" : to.screen)}
      className={active ? "nav active" : "nav"}
      data-testid={testid}
      onClick={(event) => {
        event.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
