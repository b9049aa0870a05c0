import { useCallback, useEffect, useState, type FormEvent } from "react";
import type { Invite, InviteCreated, Me, Role, Staff } from "../../api/types";
import { type Api, errorText } from "../api";
import { when } from "../components";

const ROLES: Role[] = ["OWNER", "ADMIN", "AGENT"];

export function TeamScreen({ api, me }: { api: Api; me: Me }) {
  const can = (p: string) => me.permissions.includes(p);
  const [members, setMembers] = useState<Staff[]>([]);
  const [invites, setInvites] = useState<Invite[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<InviteCreated | null>(null);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("AGENT");
  // Only owners may make, unmake or remove owners: the others are not offered.
  const assignable = ROLES.filter((r) => r !== "OWNER" || can("team:owners"));

  const load = useCallback(async () => {
    const [team, pending] = await Promise.all([api.GET("/admin/api/team"), api.GET("/admin/api/team/invites")]);
    if (team.data) setMembers(team.data);
    if (pending.data) setInvites(pending.data);
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  const invite = async (event: FormEvent) => {
    event.preventDefault();
    const { data, error: failure } = await api.POST("/admin/api/team/invites", { body: { email, role } });
    if (!data) return setError(errorText(failure));
    setError(null);
    setCreated(data);
    setEmail("");
    void load();
  };
  const changeRole = async (member: Staff, next: Role) => {
    const { error: failure } = await api.PATCH("/admin/api/team/{staff_id}", { params: { path: { staff_id: member.id } }, body: { role: next } });
    setError(failure ? errorText(failure) : null);
    void load();
  };
  const deactivate = async (member: Staff) => {
    if (!confirm(`Deactivate ${member.email}? Their sign-ins end at once.`)) return;
    const { error: failure } = await api.DELETE("/admin/api/team/{staff_id}", { params: { path: { staff_id: member.id } } });
    setError(failure ? errorText(failure) : null);
    void load();
  };
  const reactivate = async (member: Staff) => {
    const { error: failure } = await api.POST("/admin/api/team/{staff_id}/reactivate", { params: { path: { staff_id: member.id } } });
    setError(failure ? errorText(failure) : null);
    void load();
  };
  const revoke = async (pending: Invite) => {
    await api.DELETE("/admin/api/team/invites/{invite_id}", { params: { path: { invite_id: pending.id } } });
    void load();
  };
  const allowedOver = (member: Staff) => can("team:write") && member.id !== me.staff?.id && (member.role !== "OWNER" || can("team:owners"));
  const manageable = (member: Staff) => member.active && allowedOver(member);

  return (
    <div className="page" data-testid="team">
      <h1>Team</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="table">
        <thead>
          <tr>
            <th>Name</th>
            <th>E-mail</th>
            <th>Role</th>
            <th>Last sign-in</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {members.map((member) => (
            <tr key={member.id} className={member.active ? "" : "inactive"} data-testid="member" data-email={member.email}>
              <td>{member.name ?? "—"}</td>
              <td>{member.email}</td>
              <td>
                {manageable(member) ? (
                  <select aria-label={`Role of ${member.email}`} data-testid="member-role" value={member.role} onChange={(e) => void changeRole(member, e.target.value as Role)}>
                    {assignable.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                ) : (
                  member.role
                )}
              </td>
              <td>{member.active ? when(member.last_login_at) || "never" : "deactivated"}</td>
              <td>
                {manageable(member) && (
                  <button className="link danger" data-testid="deactivate" onClick={() => void deactivate(member)}>
                    Deactivate
                  </button>
                )}
                {!member.active && allowedOver(member) && (
                  <button className="link" data-testid="reactivate" onClick={() => void reactivate(member)}>
                    Reactivate
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {can("team:write") && (
        <>
          <h2>Invite someone</h2>
          <form className="inline" onSubmit={(e) => void invite(e)} data-testid="invite-form">
            <input type="email" required placeholder="name@company.com" aria-label="E-mail" data-testid="invite-email" value={email} onChange={(e) => setEmail(e.target.value)} />
            <select aria-label="Role" data-testid="invite-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {assignable.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
            <button className="primary" data-testid="invite-submit">
              Invite
            </button>
          </form>
          {created && (
            <div className="notice" data-testid="invite-link">
              Invitation e-mailed to <strong>{created.email}</strong>. You can also pass them this link yourself (it works once):
              <code>{new URL(created.invite_url, location.origin).toString()}</code>
            </div>
          )}
          {invites.length > 0 && (
            <>
              <h3>Pending invitations</h3>
              <ul className="plain-list">
                {invites.map((i) => (
                  <li key={i.id} data-testid="pending-invite">
                    {i.email} · {i.role} · expires {when(i.expires_at)}{" "}
                    <button className="link" onClick={() => void revoke(i)}>
                      Revoke
                    </button>
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </div>
  );
}
