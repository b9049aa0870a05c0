"""reports: per-app daily rollups kept by triggers, so a report reads small rows, not raw ones

Three tenant tables, keyed by the day in the app's time zone (its messenger settings):

- `report_day_messages`: messages written per day, in 8 rows a day (a shard by conversation, so
  that concurrent sends of one app do not queue on one counter row);
- `report_day_histograms`: one row per (day, metric) holding a sparse histogram as parallel
  arrays (bucket, count, sum, sum of squares). Metrics: 's' conversations started (the bucket is
  the local hour), 'f' first-response times (by the conversation's start day), 'r' resolution
  times (by the latest closing's day), 'c' ratings (the bucket is the score). Durations fall in
  buckets 2^(1/8) wide over 1 + seconds (replyhq_report_bucket);
- `report_agent_histograms`: per agent and metric ('f' by the agent who answered first, 'r' by
  the assignee at the closing, 'c' by the assignee rated), a running histogram: the row of day d
  holds everything up to d, so an agent's figures over any range are two rows' difference.

replyhq.reports.service reads percentiles from them.

Triggers on conversation_metrics, messages and conversation_ratings add a row's contribution and
take away the old one on every insert, update of the columns that matter and delete, in the same
transaction: the rollups are always exactly as fresh as the committed data. A change of the app's
time zone rebuilds its rollups from the raw tables (replyhq_reports_rebuild), in the transaction
that changes it; an advisory lock per app (shared by the triggers, exclusive for the rebuild)
keeps a transaction that read the old zone from writing into the new rollups. Existing data is
rolled up here.

Revision ID: 0080
Revises: 0111
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0080"
down_revision: str | Sequence[str] | None = "0111"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_day_messages", "report_day_histograms", "report_agent_histograms")

FUNCTIONS = """
CREATE FUNCTION replyhq_report_bucket(seconds double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT floor(8 * ln(1 + greatest(seconds, 0)) / ln(2))::smallint
$$;

CREATE FUNCTION replyhq_report_lock(app uuid, exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF exclusive THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('replyhq.reports:' || app::text, 0));
  ELSE
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('replyhq.reports:' || app::text, 0));
  END IF;
END $$;

-- The app's zone, read after the lock (a statement of its own: a fresh snapshot).
CREATE FUNCTION replyhq_report_zone(app uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE zone text;
BEGIN
  PERFORM replyhq_report_lock(app, false);
  SELECT timezone INTO zone FROM messenger_settings WHERE app_id = app;
  RETURN COALESCE(zone, 'UTC');
END $$;

-- Add (sign 1) or take away (sign -1) one value of a day's histogram. Taking away never creates
-- a row (a cascade that deletes the app may have removed it already).
CREATE FUNCTION replyhq_report_add(app uuid, d date, m char, b smallint, sign integer,
                                   v double precision) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE i integer; held boolean;
BEGIN
  LOOP
    SELECT true, array_position(buckets, b) INTO held, i FROM report_day_histograms
    WHERE app_id = app AND day = d AND metric = m FOR UPDATE;
    IF held THEN
      IF i IS NULL THEN
        IF sign > 0 THEN
          UPDATE report_day_histograms
          SET buckets = buckets || b, counts = counts || 1, sums = sums || v,
              squares = squares || v * v
          WHERE app_id = app AND day = d AND metric = m;
        END IF;
      ELSE
        UPDATE report_day_histograms
        SET counts[i] = counts[i] + sign,
            sums[i] = CASE WHEN counts[i] + sign = 0 THEN 0 ELSE sums[i] + sign * v END,
            squares[i] = CASE WHEN counts[i] + sign = 0 THEN 0
                              ELSE squares[i] + sign * v * v END
        WHERE app_id = app AND day = d AND metric = m;
      END IF;
      RETURN;
    END IF;
    IF sign < 0 THEN
      RETURN;
    END IF;
    INSERT INTO report_day_histograms (app_id, day, metric, buckets, counts, sums, squares)
    VALUES (app, d, m, ARRAY[b], ARRAY[1], ARRAY[v], ARRAY[v * v])
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN;
    END IF;  -- a concurrent transaction made the row first: add to it
  END LOOP;
END $$;

-- The same for an agent's running histogram: the row of day d and every later one. A series
-- (app, metric, agent) is changed by one transaction at a time (an advisory lock), so that a new
-- day's row copies a settled previous one.
CREATE FUNCTION replyhq_report_add_agent(app uuid, m char, staff uuid, d date, b smallint,
                                         sign integer, v double precision) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF staff IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(
    hashtextextended('replyhq.reports:' || app::text || ':' || m || ':' || staff::text, 0));
  IF sign > 0 AND NOT EXISTS (
    SELECT FROM report_agent_histograms
    WHERE app_id = app AND metric = m AND staff_id = staff AND day = d
  ) THEN
    INSERT INTO report_agent_histograms (app_id, metric, staff_id, day, buckets, counts, sums,
                                         squares)
    SELECT app, m, staff, d, COALESCE(p.buckets, '{}'), COALESCE(p.counts, '{}'),
           COALESCE(p.sums, '{}'), COALESCE(p.squares, '{}')
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
      SELECT buckets, counts, sums, squares FROM report_agent_histograms
      WHERE app_id = app AND metric = m AND staff_id = staff AND day < d
      ORDER BY day DESC LIMIT 1
    ) AS p ON true;
  END IF;
  UPDATE report_agent_histograms
  SET counts[array_position(buckets, b)] = counts[array_position(buckets, b)] + sign,
      sums[array_position(buckets, b)] =
        CASE WHEN counts[array_position(buckets, b)] + sign = 0 THEN 0
             ELSE sums[array_position(buckets, b)] + sign * v END,
      squares[array_position(buckets, b)] =
        CASE WHEN counts[array_position(buckets, b)] + sign = 0 THEN 0
             ELSE squares[array_position(buckets, b)] + sign * v * v END
  WHERE app_id = app AND metric = m AND staff_id = staff AND day >= d AND b = ANY (buckets);
  IF sign > 0 THEN
    UPDATE report_agent_histograms
    SET buckets = buckets || b, counts = counts || 1, sums = sums || v,
        squares = squares || v * v
    WHERE app_id = app AND metric = m AND staff_id = staff AND day >= d
      AND NOT (b = ANY (buckets));
  END IF;
END $$;

-- One value of a metric: into its day's histogram and its agent's running one.
CREATE FUNCTION replyhq_report_value(app uuid, d date, m char, staff uuid, sign integer,
                                     v double precision) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE b smallint := CASE WHEN m = 'c' THEN v::smallint ELSE replyhq_report_bucket(v) END;
BEGIN
  PERFORM replyhq_report_add(app, d, m, b, sign, v);
  PERFORM replyhq_report_add_agent(app, m, staff, d, b, sign, v);
END $$;

CREATE FUNCTION replyhq_report_metrics() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  app uuid := COALESCE(NEW.app_id, OLD.app_id);
  zone text := replyhq_report_zone(app);
  seconds double precision;
BEGIN
  -- started: the local day and hour
  IF TG_OP <> 'UPDATE' OR OLD.created_at IS DISTINCT FROM NEW.created_at THEN
    IF TG_OP <> 'INSERT' THEN
      PERFORM replyhq_report_add(app, (OLD.created_at AT TIME ZONE zone)::date, 's',
        extract(hour FROM OLD.created_at AT TIME ZONE zone)::smallint, -1, 0);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM replyhq_report_add(app, (NEW.created_at AT TIME ZONE zone)::date, 's',
        extract(hour FROM NEW.created_at AT TIME ZONE zone)::smallint, 1, 0);
    END IF;
  END IF;
  -- first response: by the start's day and the agent who answered
  IF TG_OP <> 'UPDATE'
     OR (OLD.created_at, OLD.first_response_at, OLD.first_responder_id)
        IS DISTINCT FROM (NEW.created_at, NEW.first_response_at, NEW.first_responder_id) THEN
    IF TG_OP <> 'INSERT' AND OLD.first_response_at IS NOT NULL THEN
      seconds := extract(epoch FROM OLD.first_response_at - OLD.created_at);
      PERFORM replyhq_report_value(app, (OLD.created_at AT TIME ZONE zone)::date, 'f',
        OLD.first_responder_id, -1, seconds);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.first_response_at IS NOT NULL THEN
      seconds := extract(epoch FROM NEW.first_response_at - NEW.created_at);
      PERFORM replyhq_report_value(app, (NEW.created_at AT TIME ZONE zone)::date, 'f',
        NEW.first_responder_id, 1, seconds);
    END IF;
  END IF;
  -- resolution: by the latest closing's day and the assignee then
  IF TG_OP <> 'UPDATE'
     OR (OLD.created_at, OLD.closed_at, OLD.closed_assignee_id)
        IS DISTINCT FROM (NEW.created_at, NEW.closed_at, NEW.closed_assignee_id) THEN
    IF TG_OP <> 'INSERT' AND OLD.closed_at IS NOT NULL THEN
      seconds := extract(epoch FROM OLD.closed_at - OLD.created_at);
      PERFORM replyhq_report_value(app, (OLD.closed_at AT TIME ZONE zone)::date, 'r',
        OLD.closed_assignee_id, -1, seconds);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.closed_at IS NOT NULL THEN
      seconds := extract(epoch FROM NEW.closed_at - NEW.created_at);
      PERFORM replyhq_report_value(app, (NEW.closed_at AT TIME ZONE zone)::date, 'r',
        NEW.closed_assignee_id, 1, seconds);
    END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER report_metrics AFTER INSERT OR UPDATE OR DELETE ON conversation_metrics
FOR EACH ROW EXECUTE FUNCTION replyhq_report_metrics();

CREATE FUNCTION replyhq_report_ratings() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  app uuid := COALESCE(NEW.app_id, OLD.app_id);
  zone text := replyhq_report_zone(app);
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM replyhq_report_value(app, (OLD.created_at AT TIME ZONE zone)::date, 'c',
      OLD.assignee_id, -1, OLD.score);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM replyhq_report_value(app, (NEW.created_at AT TIME ZONE zone)::date, 'c',
      NEW.assignee_id, 1, NEW.score);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER report_ratings
AFTER INSERT OR DELETE OR UPDATE OF created_at, score, assignee_id ON conversation_ratings
FOR EACH ROW EXECUTE FUNCTION replyhq_report_ratings();

CREATE FUNCTION replyhq_report_shard(conversation uuid) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (get_byte(uuid_send(conversation), 15) & 7)::smallint
$$;

CREATE FUNCTION replyhq_report_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  app uuid := COALESCE(NEW.app_id, OLD.app_id);
  zone text := replyhq_report_zone(app);
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.kind = 'message' THEN
    UPDATE report_day_messages SET messages = messages - 1
    WHERE app_id = app AND day = (OLD.created_at AT TIME ZONE zone)::date
      AND shard = replyhq_report_shard(OLD.conversation_id);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.kind = 'message' THEN
    INSERT INTO report_day_messages AS r (app_id, day, shard, messages)
    VALUES (app, (NEW.created_at AT TIME ZONE zone)::date,
            replyhq_report_shard(NEW.conversation_id), 1)
    ON CONFLICT (app_id, day, shard) DO UPDATE SET messages = r.messages + 1;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER report_messages_inserted AFTER INSERT ON messages
FOR EACH ROW WHEN (NEW.kind = 'message') EXECUTE FUNCTION replyhq_report_messages();

CREATE TRIGGER report_messages_changed AFTER UPDATE OF created_at, kind ON messages
FOR EACH ROW
WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.kind IS DISTINCT FROM NEW.kind)
EXECUTE FUNCTION replyhq_report_messages();

CREATE TRIGGER report_messages_deleted AFTER DELETE ON messages
FOR EACH ROW WHEN (OLD.kind = 'message') EXECUTE FUNCTION replyhq_report_messages();

-- Everything of one app rolled up again from the raw tables, in its current zone.
CREATE FUNCTION replyhq_reports_rebuild(app uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE zone text;
BEGIN
  PERFORM replyhq_report_lock(app, true);
  SELECT COALESCE((SELECT timezone FROM messenger_settings WHERE app_id = app), 'UTC')
  INTO zone;
  DELETE FROM report_day_messages WHERE app_id = app;
  DELETE FROM report_day_histograms WHERE app_id = app;
  DELETE FROM report_agent_histograms WHERE app_id = app;
  INSERT INTO report_day_messages (app_id, day, shard, messages)
  SELECT app, (created_at AT TIME ZONE zone)::date, replyhq_report_shard(conversation_id),
         count(*)
  FROM messages WHERE app_id = app AND kind = 'message'
  GROUP BY 2, 3;
  CREATE TEMPORARY TABLE replyhq_report_values ON COMMIT DROP AS
  SELECT day, metric, staff, b, count(*)::integer AS n, sum(v) AS s, sum(v * v) AS q
  FROM (
    SELECT (created_at AT TIME ZONE zone)::date AS day, 's'::char AS metric,
           NULL::uuid AS staff, extract(hour FROM created_at AT TIME ZONE zone)::smallint AS b,
           0::double precision AS v
    FROM conversation_metrics WHERE app_id = app
    UNION ALL
    SELECT (created_at AT TIME ZONE zone)::date, 'f', first_responder_id,
           replyhq_report_bucket(extract(epoch FROM first_response_at - created_at)),
           extract(epoch FROM first_response_at - created_at)
    FROM conversation_metrics WHERE app_id = app AND first_response_at IS NOT NULL
    UNION ALL
    SELECT (closed_at AT TIME ZONE zone)::date, 'r', closed_assignee_id,
           replyhq_report_bucket(extract(epoch FROM closed_at - created_at)),
           extract(epoch FROM closed_at - created_at)
    FROM conversation_metrics WHERE app_id = app AND closed_at IS NOT NULL
    UNION ALL
    SELECT (created_at AT TIME ZONE zone)::date, 'c', assignee_id, score, score
    FROM conversation_ratings WHERE app_id = app
  ) AS contributions
  GROUP BY 1, 2, 3, 4;
  INSERT INTO report_day_histograms (app_id, day, metric, buckets, counts, sums, squares)
  SELECT app, day, metric, array_agg(b), array_agg(n), array_agg(s), array_agg(q)
  FROM (
    SELECT day, metric, b, sum(n)::integer AS n, sum(s) AS s, sum(q) AS q
    FROM replyhq_report_values GROUP BY 1, 2, 3
  ) AS per_day
  GROUP BY day, metric;
  -- An agent's running histograms: on each day it has values, every bucket seen so far.
  INSERT INTO report_agent_histograms (app_id, metric, staff_id, day, buckets, counts, sums,
                                       squares)
  SELECT app, metric, staff, day, array_agg(b), array_agg(n), array_agg(s), array_agg(q)
  FROM (
    SELECT d.metric, d.staff, d.day, k.b,
           (sum(COALESCE(v.n, 0)) OVER running)::integer AS n,
           sum(COALESCE(v.s, 0)) OVER running AS s, sum(COALESCE(v.q, 0)) OVER running AS q
    FROM (SELECT DISTINCT metric, staff, day FROM replyhq_report_values
          WHERE staff IS NOT NULL AND metric <> 's') AS d
    JOIN (SELECT metric, staff, b, min(day) AS since FROM replyhq_report_values
          WHERE staff IS NOT NULL AND metric <> 's' GROUP BY 1, 2, 3) AS k
      ON k.metric = d.metric AND k.staff = d.staff AND k.since <= d.day
    LEFT JOIN replyhq_report_values AS v
      ON v.metric = d.metric AND v.staff = d.staff AND v.day = d.day AND v.b = k.b
    WINDOW running AS (PARTITION BY d.metric, d.staff, k.b ORDER BY d.day)
  ) AS running_values
  GROUP BY metric, staff, day;
  DROP TABLE replyhq_report_values;
END $$;

CREATE FUNCTION replyhq_report_zone_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM replyhq_reports_rebuild(NEW.app_id);
  RETURN NULL;
END $$;

CREATE TRIGGER report_zone_set AFTER INSERT ON messenger_settings
FOR EACH ROW WHEN (NEW.timezone <> 'UTC') EXECUTE FUNCTION replyhq_report_zone_changed();

CREATE TRIGGER report_zone_changed AFTER UPDATE OF timezone ON messenger_settings
FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
EXECUTE FUNCTION replyhq_report_zone_changed();
"""

DROP = """
DROP TRIGGER IF EXISTS report_zone_changed ON messenger_settings;
DROP TRIGGER IF EXISTS report_zone_set ON messenger_settings;
DROP TRIGGER IF EXISTS report_messages_deleted ON messages;
DROP TRIGGER IF EXISTS report_messages_changed ON messages;
DROP TRIGGER IF EXISTS report_messages_inserted ON messages;
DROP TRIGGER IF EXISTS report_ratings ON conversation_ratings;
DROP TRIGGER IF EXISTS report_metrics ON conversation_metrics;
DROP FUNCTION IF EXISTS replyhq_report_zone_changed();
DROP FUNCTION IF EXISTS replyhq_reports_rebuild(uuid);
DROP FUNCTION IF EXISTS replyhq_report_messages();
DROP FUNCTION IF EXISTS replyhq_report_shard(uuid);
DROP FUNCTION IF EXISTS replyhq_report_ratings();
DROP FUNCTION IF EXISTS replyhq_report_metrics();
DROP FUNCTION IF EXISTS replyhq_report_value(uuid, date, char, uuid, integer, double precision);
DROP FUNCTION IF EXISTS replyhq_report_add_agent(uuid, char, uuid, date, smallint, integer,
                                                 double precision);
DROP FUNCTION IF EXISTS replyhq_report_add(uuid, date, char, smallint, integer, double precision);
DROP FUNCTION IF EXISTS replyhq_report_zone(uuid);
DROP FUNCTION IF EXISTS replyhq_report_lock(uuid, boolean);
DROP FUNCTION IF EXISTS replyhq_report_bucket(double precision);
"""

# The tables the backfill reads and writes; their owner (this migration's role) reads through
# their policies while they are FORCEd, so that is lifted for the backfill only.
BACKFILLED = (
    "apps",
    "messenger_settings",
    "messages",
    "conversation_metrics",
    "conversation_ratings",
    *TABLES,
)


def _app_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["app_id"], ["apps.id"], name=f"fk_{table}_app_id_apps", ondelete="CASCADE"
    )


def _histogram() -> list[sa.Column[Any]]:
    return [
        sa.Column("buckets", sa.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("counts", sa.ARRAY(sa.Integer()), nullable=False),
        sa.Column("sums", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("squares", sa.ARRAY(sa.Double()), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "report_day_messages",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        _app_fk("report_day_messages"),
        sa.PrimaryKeyConstraint("app_id", "day", "shard", name="pk_report_day_messages"),
    )
    op.create_table(
        "report_day_histograms",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.CHAR(1), nullable=False),
        *_histogram(),
        sa.CheckConstraint(
            "metric IN ('s', 'f', 'r', 'c')", name="ck_report_day_histograms_metric"
        ),
        _app_fk("report_day_histograms"),
        sa.PrimaryKeyConstraint("app_id", "day", "metric", name="pk_report_day_histograms"),
    )
    op.create_table(
        "report_agent_histograms",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.CHAR(1), nullable=False),
        sa.Column("staff_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_histogram(),
        sa.CheckConstraint("metric IN ('f', 'r', 'c')", name="ck_report_agent_histograms_metric"),
        _app_fk("report_agent_histograms"),
        sa.PrimaryKeyConstraint(
            "app_id", "metric", "staff_id", "day", name="pk_report_agent_histograms"
        ),
    )
    for table in TABLES:
        enable_tenant_rls(table)
    op.execute(FUNCTIONS)
    for table in BACKFILLED:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("SELECT replyhq_reports_rebuild(id) FROM apps")
    for table in BACKFILLED:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute(DROP)
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
