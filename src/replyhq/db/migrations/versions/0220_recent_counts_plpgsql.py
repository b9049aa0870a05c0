"""analytics: migration 0210's recent-count functions in PL/pgSQL

The ingest flush calls `replyhq_recent_counts` and `replyhq_merge_recent` once per person and
event name of a batch. As SQL functions with a FROM clause they are not inlined: every call set
up a query executor of its own (the flush of 10 events took 1.53x the time of one that upserted
`last_at` only; docs/analytics.md). The same arithmetic as loops over arrays in PL/pgSQL, whose
expressions are evaluated without a query. Same names, arguments and results.

Revision ID: 0220
Revises: 0210
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0220"
down_revision: str | Sequence[str] | None = "0210"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECENT_COUNTS = """
CREATE OR REPLACE FUNCTION replyhq_recent_counts(days date[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  -- [k]: how many of `days` are on the latest of them or the k-1 days before it (k <= 32).
  top date := days[1];
  bottom date := days[1];
  d date;
  n integer;
  k integer;
  counts integer[];
BEGIN
  FOREACH d IN ARRAY days LOOP
    top := greatest(top, d);
    bottom := least(bottom, d);
  END LOOP;
  n := least(32, top - bottom + 1);
  counts := array_fill(0, ARRAY[n]);
  FOREACH d IN ARRAY days LOOP
    k := top - d + 1;
    IF k <= n THEN
      counts[k] := counts[k] + 1;
    END IF;
  END LOOP;
  FOR k IN 2..n LOOP
    counts[k] := counts[k] + counts[k - 1];
  END LOOP;
  RETURN counts;
END $$
"""

_MERGE_RECENT = """
CREATE OR REPLACE FUNCTION replyhq_merge_recent(a integer[], a_day date, b integer[], b_day date)
RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  -- Both arrays counted back from the later of their anchors, added up. An array's element
  -- past its end is its last one; before its anchor (k <= shift) it counts nothing.
  top date := greatest(a_day, b_day);
  a_shift integer := top - a_day;
  b_shift integer := top - b_day;
  a_len integer := cardinality(a);
  b_len integer := cardinality(b);
  n integer;
  k integer;
  merged integer[];
BEGIN
  n := least(32, greatest(
    CASE WHEN a_shift < 32 THEN a_shift + a_len ELSE 1 END,
    CASE WHEN b_shift < 32 THEN b_shift + b_len ELSE 1 END));
  merged := array_fill(0, ARRAY[n]);
  FOR k IN 1..n LOOP
    IF k > a_shift THEN
      merged[k] := merged[k] + a[least(k - a_shift, a_len)];
    END IF;
    IF k > b_shift THEN
      merged[k] := merged[k] + b[least(k - b_shift, b_len)];
    END IF;
  END LOOP;
  RETURN merged;
END $$
"""

# Migration 0210's definitions, for the downgrade.
_SQL_RECENT_COUNTS = """
CREATE OR REPLACE FUNCTION replyhq_recent_counts(days date[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(
           (SELECT count(*)::integer FROM unnest(days) AS d WHERE d > top - k) ORDER BY k)
  FROM (SELECT max(d) AS top, min(d) AS bottom FROM unnest(days) AS d) AS span,
       generate_series(1, least(32, top - bottom + 1)) AS k
$$
"""

_SQL_MERGE_RECENT = """
CREATE OR REPLACE FUNCTION replyhq_merge_recent(a integer[], a_day date, b integer[], b_day date)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
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


def downgrade() -> None:
    op.execute(_SQL_RECENT_COUNTS)
    op.execute(_SQL_MERGE_RECENT)
