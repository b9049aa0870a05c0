"""analytics: events partitioned by day, per-user daily rollups, the event catalog, segments,
campaigns

`events` and `event_daily_counts` are partitioned by UTC day (declarative partitioning: the
embedded PostgreSQL of `make dev` has no TimescaleDB). Partitions are made ahead and dropped after
EVENT_RETENTION_DAYS by two SECURITY DEFINER functions (the runtime and system roles have no DDL
rights): replyhq.analytics.partitions calls them from a periodic job.

Tenancy: the policies are on the parents, which are what every query names; PostgreSQL applies a
parent's policies to the rows of its partitions read or written through it. A partition itself is
reachable only by its owner: the functions revoke what the default privileges grant on it, and
turn row-level security on with no policy (deny) as a second lock.

Revision ID: 0030
Revises: 0020
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls, system_role

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How far either function may reach, whatever it is asked: a caller cannot make thousands of
# tables, nor drop today's.
_ENSURE = """
CREATE FUNCTION replyhq_ensure_event_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  day date;
  parent text;
  part text;
  grantee text;
  made integer := 0;
  today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
  first_day := greatest(first_day, today - 400);
  last_day := least(last_day, today + 31);
  PERFORM pg_advisory_xact_lock(hashtext('replyhq_event_partitions'));
  PERFORM set_config('lock_timeout', '5s', true);
  day := first_day;
  WHILE day <= last_day LOOP
    FOREACH parent IN ARRAY ARRAY['events', 'event_daily_counts'] LOOP
      part := parent || '_' || to_char(day, 'YYYYMMDD');
      CONTINUE WHEN to_regclass(part) IS NOT NULL;
      IF parent = 'events' THEN
        EXECUTE format(
          'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
          part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
      ELSE
        EXECUTE format(
          'CREATE TABLE %I PARTITION OF event_daily_counts FOR VALUES FROM (%L) TO (%L)',
          part, day, day + 1);
      END IF;
      -- Reached only through its parent, whose policies apply.
      EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', part);
      FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = part::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner
      LOOP
        EXECUTE format('REVOKE ALL ON %I FROM %s', part, grantee);
      END LOOP;
      EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', part);
      made := made + 1;
    END LOOP;
    day := day + 1;
  END LOOP;
  RETURN made;
END $$
"""

_DROP = """
CREATE FUNCTION replyhq_drop_event_partitions(before_day date)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  part text;
  dropped integer := 0;
BEGIN
  before_day := least(before_day, (now() AT TIME ZONE 'UTC')::date);
  PERFORM pg_advisory_xact_lock(hashtext('replyhq_event_partitions'));
  -- A long segment query holding the parent must not queue every insert behind this DROP:
  -- give up and try again at the next run.
  PERFORM set_config('lock_timeout', '5s', true);
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent IN ('events'::regclass, 'event_daily_counts'::regclass)
      AND c.relname ~ '_[0-9]{8}$'
      AND to_date(right(c.relname, 8), 'YYYYMMDD') < before_day
    ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE %I', part);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END $$
"""


def upgrade() -> None:
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    app_role = attributes.get("app_role", "replyhq_app")
    op.execute(
        """
        CREATE TABLE events (
            app_id uuid NOT NULL,
            end_user_id uuid NOT NULL,
            device_id varchar(128) NOT NULL,
            platform varchar(32),
            app_version varchar(64),
            name varchar(100) NOT NULL,
            properties jsonb NOT NULL DEFAULT '{}',
            occurred_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now()
        ) PARTITION BY RANGE (occurred_at)
        """
    )
    # Segment conditions on an event's properties (or within hours) read these; a user's own
    # events (by end_user_id) are for the profile's timeline.
    op.execute("CREATE INDEX ix_events_name_time ON events (app_id, name, occurred_at)")
    op.execute("CREATE INDEX ix_events_user_time ON events (app_id, end_user_id, occurred_at)")
    op.execute("CREATE INDEX ix_events_properties ON events USING gin (properties jsonb_path_ops)")
    op.execute(
        """
        CREATE TABLE event_daily_counts (
            app_id uuid NOT NULL,
            name varchar(100) NOT NULL,
            day date NOT NULL,
            end_user_id uuid NOT NULL,
            count integer NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, name, day, end_user_id)
        ) PARTITION BY RANGE (day)
        """
    )
    op.execute(
        """
        CREATE TABLE event_names (
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            name varchar(100) NOT NULL,
            count bigint NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, name)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE segments (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            name varchar(100) NOT NULL,
            query jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (id, app_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_segments_app ON segments (app_id, created_at)")
    # Segment conditions on attributes (equals, in) are containment: @> can use it.
    op.execute(
        "CREATE INDEX ix_end_users_attributes ON end_users USING gin (attributes jsonb_path_ops)"
    )
    op.execute(
        """
        CREATE TABLE campaigns (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            name varchar(100) NOT NULL,
            segment_id uuid,
            query jsonb NOT NULL,
            sender_id uuid NOT NULL,
            sender_name varchar(255),
            body text NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'sending',
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            UNIQUE (id, app_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_campaigns_app ON campaigns (app_id, created_at)")
    op.execute(
        """
        CREATE TABLE campaign_messages (
            campaign_id uuid NOT NULL,
            end_user_id uuid NOT NULL,
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            conversation_id uuid NOT NULL,
            seq integer NOT NULL,
            sent_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign_id, end_user_id),
            FOREIGN KEY (campaign_id, app_id) REFERENCES campaigns (id, app_id) ON DELETE CASCADE
        )
        """
    )
    for table in (
        "events",
        "event_daily_counts",
        "event_names",
        "segments",
        "campaigns",
        "campaign_messages",
    ):
        enable_tenant_rls(table)
    op.execute(_ENSURE)
    op.execute(_DROP)
    system = system_role()
    op.execute("REVOKE ALL ON FUNCTION replyhq_ensure_event_partitions(date, date) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION replyhq_drop_event_partitions(date) FROM PUBLIC")
    # The runtime role makes a missing partition when an insert meets none (a worker was down
    # at midnight); only the system role's periodic job drops.
    op.execute(
        "GRANT EXECUTE ON FUNCTION replyhq_ensure_event_partitions(date, date) "
        f'TO "{app_role}", "{system}"'
    )
    op.execute(f'GRANT EXECUTE ON FUNCTION replyhq_drop_event_partitions(date) TO "{system}"')
    # Every day an accepted timestamp can fall on (30 days back, 1 ahead) and a little more.
    op.execute(
        "SELECT replyhq_ensure_event_partitions("
        "(now() AT TIME ZONE 'UTC')::date - 31, (now() AT TIME ZONE 'UTC')::date + 3)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_end_users_attributes")
    op.execute("DROP FUNCTION IF EXISTS replyhq_drop_event_partitions(date)")
    op.execute("DROP FUNCTION IF EXISTS replyhq_ensure_event_partitions(date, date)")
    for table in (
        "campaign_messages",
        "campaigns",
        "segments",
        "event_names",
        "event_daily_counts",
        "events",
    ):
        disable_tenant_rls(table)
        op.execute(f"DROP TABLE IF EXISTS {table}")
