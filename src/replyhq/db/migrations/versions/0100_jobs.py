"""jobs: procrastinate's queue schema, dead-job errors and once-per-schedule claims

The queue lives in our database so that a job is inserted by the same transaction as the data
that causes it. The schema is procrastinate's own (`procrastinate.schema`, version pinned in
pyproject.toml); a later procrastinate upgrade ships SQL migrations that become new revisions here.
None of these tables belongs to a tenant: jobs carry the app id in their arguments and open their
own tenant session.

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0100"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = [
    "procrastinate_workers",
    "procrastinate_jobs",
    "procrastinate_periodic_defers",
    "procrastinate_events",
    "job_errors",
    "job_schedule_runs",
]
TYPES = [
    "procrastinate_job_status",
    "procrastinate_job_event_type",
    "procrastinate_job_to_defer_v1",
]

OUR_TABLES = """
CREATE TABLE job_errors (
    job_id bigint PRIMARY KEY REFERENCES procrastinate_jobs(id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE job_errors IS 'Last error of each failed job (redacted): replyhq jobs failed';

CREATE TABLE job_schedule_runs (
    task_name varchar(128) NOT NULL,
    periodic_id varchar(128) NOT NULL DEFAULT '',
    scheduled_for bigint NOT NULL,
    job_id bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_name, periodic_id, scheduled_for)
);
COMMENT ON TABLE job_schedule_runs IS 'The one job allowed to run each tick of a periodic task';
"""


GRANT_FUNCTIONS = """
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%'
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO "ROLE"', f);
  END LOOP;
END $$
"""


def _execute_script(script: str) -> None:
    # The driver connection runs a multi-statement script verbatim (no bind-parameter parsing of
    # the `::casts` and `%` in function bodies), inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(script)  # type: ignore[union-attr]


def upgrade() -> None:
    _execute_script(SchemaManager.get_schema())
    _execute_script(OUR_TABLES)
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    role = attributes.get("app_role", "replyhq_app")
    # Default privileges from 0001 already cover tables and sequences made by the owner; being
    # explicit keeps the worker working where an operator created these objects another way.
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO "{role}"')
    op.execute(
        f"GRANT USAGE, SELECT ON SEQUENCE procrastinate_jobs_id_seq, "
        f'procrastinate_events_id_seq, procrastinate_periodic_defers_id_seq TO "{role}"'
    )
    op.execute(f'GRANT USAGE ON TYPE {", ".join(TYPES)} TO "{role}"')
    # The role name comes from our own settings, never from a request.
    _execute_script(GRANT_FUNCTIONS.replace("ROLE", role))


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(TABLES))} CASCADE")
    _execute_script(
        """
        DO $$
        DECLARE f regprocedure;
        BEGIN
          FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                   JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%'
          LOOP
            EXECUTE format('DROP FUNCTION %s CASCADE', f);
          END LOOP;
        END $$
        """
    )
    op.execute(f"DROP TYPE IF EXISTS {', '.join(reversed(TYPES))} CASCADE")
