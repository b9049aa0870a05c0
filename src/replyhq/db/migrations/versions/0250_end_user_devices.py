"""users: what a person's devices say of them, on the person: `last_seen_at`, `platforms`, `locales`

The segment fields `last_seen_at` (the latest of their devices'), `platform` and `locale` (any
of their devices') were answered from `devices`: a hash of the app's devices for each condition,
three scans of them for a segment that asks two of these (docs/benchmarks.md, *Segment
previews*). Kept on `end_users` by a trigger on `devices`, they are columns of the row the
segment already reads. The trigger recomputes a person's three from their devices whenever a
device of theirs is added, removed, moves to someone else, or changes platform, locale or when
it was last seen (identify): the person's row is locked first, in id order when a device moves
between two people, so that two transactions changing the same person's devices compute the
summary one after the other, each from what the other committed. (Two people who sign in on each
other's device at the same moment lock each other: PostgreSQL ends one of the two identifies
with a deadlock, which that SDK call retries. An identify costs 0.2-0.3 ms more of the
database's time; docs/benchmarks.md.)

Revision ID: 0250
Revises: 0240
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0250"
down_revision: str | Sequence[str] | None = "0240"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUMMARISE = """
CREATE FUNCTION replyhq_summarise_devices(app uuid, person uuid) RETURNS void
LANGUAGE sql AS $$
  UPDATE end_users SET (last_seen_at, platforms, locales) = (
    SELECT max(d.last_seen_at),
           coalesce(array_agg(DISTINCT d.platform::text), '{}'),
           coalesce(array_agg(DISTINCT d.locale::text) FILTER (WHERE d.locale IS NOT NULL), '{}')
    FROM devices d WHERE d.app_id = app AND d.end_user_id = person)
  WHERE end_users.app_id = app AND end_users.id = person
$$
"""

_TRIGGER_FUNCTION = """
CREATE FUNCTION replyhq_devices_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  app uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.app_id ELSE NEW.app_id END;
  people uuid[];
  person uuid;
BEGIN
  IF TG_OP = 'INSERT' THEN
    people := ARRAY[NEW.end_user_id];
  ELSIF TG_OP = 'DELETE' THEN
    people := ARRAY[OLD.end_user_id];
  ELSE
    people := ARRAY[OLD.end_user_id, NEW.end_user_id];
  END IF;
  -- Each summary from its person's devices as committed once the person is locked.
  PERFORM 1 FROM end_users WHERE app_id = app AND id = ANY (people) ORDER BY id FOR UPDATE;
  FOR person IN SELECT DISTINCT p FROM unnest(people) AS p LOOP
    PERFORM replyhq_summarise_devices(app, person);
  END LOOP;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(
        "ALTER TABLE end_users ADD COLUMN last_seen_at timestamptz, "
        "ADD COLUMN platforms text[] NOT NULL DEFAULT '{}', "
        "ADD COLUMN locales text[] NOT NULL DEFAULT '{}'"
    )
    op.execute(_SUMMARISE)
    op.execute(_TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER devices_summarised AFTER INSERT OR DELETE "
        "OR UPDATE OF end_user_id, platform, locale, last_seen_at ON devices "
        "FOR EACH ROW EXECUTE FUNCTION replyhq_devices_changed()"
    )
    # The people who have devices now (the owner: every app's rows).
    op.execute("ALTER TABLE end_users NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE devices NO FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        UPDATE end_users u SET last_seen_at = d.seen, platforms = d.platforms,
                               locales = d.locales
        FROM (
          SELECT app_id, end_user_id, max(last_seen_at) AS seen,
                 array_agg(DISTINCT platform::text) AS platforms,
                 coalesce(array_agg(DISTINCT locale::text) FILTER (WHERE locale IS NOT NULL),
                          '{}') AS locales
          FROM devices GROUP BY 1, 2
        ) AS d
        WHERE u.app_id = d.app_id AND u.id = d.end_user_id
        """
    )
    op.execute("ALTER TABLE end_users FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE devices FORCE ROW LEVEL SECURITY")
    op.execute("ANALYZE end_users")


def downgrade() -> None:
    op.execute("DROP TRIGGER devices_summarised ON devices")
    op.execute("DROP FUNCTION replyhq_devices_changed()")
    op.execute("DROP FUNCTION replyhq_summarise_devices(uuid, uuid)")
    op.execute(
        "ALTER TABLE end_users DROP COLUMN last_seen_at, DROP COLUMN platforms, DROP COLUMN locales"
    )
