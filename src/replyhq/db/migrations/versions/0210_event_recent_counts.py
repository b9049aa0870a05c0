"""analytics: `event_latest.recent`, each person's counts of an event name over its last 32 days

"Did X at least N times in the last D days" grouped every (day, person) daily count of X in the
window by person: at 10 million events, 661,362 rows for `feature_used` over 30 days, grouped in
memory (450 to 650 ms). A person's row of `event_latest` now also holds, counted back from the
UTC day of their latest X (the anchor), how many times they did X: `recent[k]` is the number of
X on the anchor and the k-1 days before it, for k up to 32, so the count over the days from D
on is one subscript, `recent[anchor - D + 1]`, of one row per person (windows of up to 31 days:
the anchor is at most a day ahead of today). The array stops where it stops growing: past its
last element the count is the last element (a person seen on one day only has one element).

The ingest flush maintains it in the statement that upserts `event_latest`: the batch's events
of a person and name make a second such array (replyhq_recent_counts), merged with the stored one
by shifting each to the later anchor (replyhq_merge_recent). Days older than the 32 the array
holds are left out: no window it answers reaches them. Retention drops the daily partitions and
leaves these counts: the segment compiler counts only from the oldest day still kept, as it does
for `last_at`.

Backfilled from the daily counts in one statement.

Revision ID: 0210
Revises: 0190
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0210"
down_revision: str | Sequence[str] | None = "0190"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The arrays hold 32 days (literal below); replyhq.segments.compile.RECENT_DAYS is one less: a
# window of D days reaches D + 1 days back from an anchor that may be tomorrow.
_RECENT_COUNTS = """
CREATE FUNCTION replyhq_recent_counts(days date[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  -- [k]: how many of `days` are on the latest of them or the k-1 days before it.
  SELECT array_agg(
           (SELECT count(*)::integer FROM unnest(days) AS d WHERE d > top - k) ORDER BY k)
  FROM (SELECT max(d) AS top, min(d) AS bottom FROM unnest(days) AS d) AS span,
       generate_series(1, least(32, top - bottom + 1)) AS k
$$
"""

_MERGE_RECENT = """
CREATE FUNCTION replyhq_merge_recent(a integer[], a_day date, b integer[], b_day date)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  -- Both arrays counted back from the later of their anchors, added up. An array's element
  -- past its end is its last one; before its anchor (k <= shift) it counts nothing.
  SELECT array_agg(
           CASE WHEN k > top - a_day THEN a[least(k - (top - a_day), cardinality(a))] ELSE 0 END
         + CASE WHEN k > top - b_day THEN b[least(k - (top - b_day), cardinality(b))] ELSE 0 END
           ORDER BY k)
  FROM (SELECT greatest(a_day, b_day) AS top) AS anchor,
       generate_series(1, least(32, greatest(
         CASE WHEN top - a_day < 32 THEN top - a_day + cardinality(a) ELSE 1 END,
         CASE WHEN top - b_day < 32 THEN top - b_day + cardinality(b) ELSE 1 END
       ))) AS k
$$
"""


def upgrade() -> None:
    op.execute(_RECENT_COUNTS)
    op.execute(_MERGE_RECENT)
    op.execute("ALTER TABLE event_latest ADD COLUMN recent integer[]")
    # The owner reads every app's daily counts (as migrations 0080 and 0190 do).
    for table in ("event_daily_counts", "event_latest"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        UPDATE event_latest AS l SET recent = r.recent
        FROM (
          SELECT s.app_id, s.name, s.end_user_id,
                 array_agg(
                   (SELECT sum(x.count)::integer
                    FROM unnest(s.days, s.counts) AS x (day, count) WHERE x.day > s.top - k)
                   ORDER BY k) AS recent
          FROM (
            SELECT app_id, name, end_user_id, max(day) AS top, min(day) AS bottom,
                   array_agg(day) AS days, array_agg(count) AS counts
            FROM event_daily_counts GROUP BY 1, 2, 3
          ) AS s,
          generate_series(1, least(32, s.top - s.bottom + 1)) AS k
          GROUP BY 1, 2, 3
        ) AS r
        WHERE l.app_id = r.app_id AND l.name = r.name AND l.end_user_id = r.end_user_id
        """
    )
    # A person whose events were all in days already dropped: nothing recent.
    op.execute("UPDATE event_latest SET recent = '{0}' WHERE recent IS NULL")
    for table in ("event_daily_counts", "event_latest"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE event_latest ALTER COLUMN recent SET NOT NULL")
    op.execute("ANALYZE event_latest")


def downgrade() -> None:
    op.execute("ALTER TABLE event_latest DROP COLUMN recent")
    op.execute("DROP FUNCTION replyhq_merge_recent(integer[], date, integer[], date)")
    op.execute("DROP FUNCTION replyhq_recent_counts(date[])")
