import type { Me } from "../../api/types";

const WHAT = {
  team: "manage the team",
  settings: "change the app's settings",
  billing: "see the app's billing",
  reports: "see the team's reports",
  console: "watch the app's SDK traffic",
  segments: "see the app's segments",
  messages: "see the messages sent to people",
} as const;
const TITLE = { team: "Team", settings: "Settings", billing: "Billing", reports: "Reports", console: "Test console", segments: "Segments", messages: "Messages" } as const;

/** A management screen opened by someone whose role may not use it: say why, rather than
 * showing something else in its place. */
export function NeedsRoleScreen({ me, screen }: { me: Me; screen: keyof typeof WHAT }) {
  return (
    <div className="page" data-testid="needs-role" data-screen={screen}>
      <h1>{TITLE[screen]}</h1>
      <p className="panel">
        You need the ADMIN role to {WHAT[screen]}. Your role in this app is {me.role}; an ADMIN or OWNER of the app can change
        it on the Team screen.
      </p>
    </div>
  );
}
