"""Every knob of ReplyHQ: one environment variable each, with a default safe for a laptop."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Defaults that let a laptop run with no configuration; production refuses to start with them.
DEV_MASTER_KEY = "rhq_master_dev_only"
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"  # noqa: S105
DEV_JWT_REFRESH_SECRET = "dev-only-refresh-secret-change-me-in-production"  # noqa: S105
# A valid Fernet key anyone can read: push credentials encrypted with it are not protected.
DEV_PUSH_CREDENTIALS_KEY = "ZGV2LW9ubHktcHVzaC1jcmVkZW50aWFscy1rZXkhISE="
MIN_SECRET_LENGTH = 16  # an empty or guessable secret is no better than the default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses default secrets."
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL of the schema owner (runs migrations). "
        "Unset: an embedded PostgreSQL under DATA_DIR.",
    )
    app_database_url: str | None = Field(
        None,
        description="URL the server uses at run time. Unset: DATABASE_URL with the user "
        "replaced by DATABASE_APP_ROLE and the password by APP_DATABASE_PASSWORD.",
    )
    database_app_role: str = Field(
        "replyhq_app", description="Runtime role: not owner, not superuser, not BYPASSRLS."
    )
    app_database_password: str | None = Field(None, description="Password of the runtime role.")
    system_database_url: str | None = Field(
        None,
        description="URL for cross-tenant work (setup, sign-in lookup, housekeeping jobs). "
        "Unset: DATABASE_URL with the user replaced by DATABASE_SYSTEM_ROLE and the password by "
        "SYSTEM_DATABASE_PASSWORD.",
    )
    database_system_role: str = Field(
        "replyhq_system",
        description="Role that may read every tenant's rows: not owner, not superuser, not "
        "BYPASSRLS; the runtime role cannot become it.",
    )
    system_database_password: str | None = Field(None, description="Password of the system role.")
    # Fixed by default: an overflow connection is opened for a burst and closed after each use
    # while the burst lasts, and that churn cost more than waiting for a pooled one (issue 21).
    db_pool_size: int = Field(
        10,
        ge=1,
        description="Connections kept per process (opened as needed, then kept). A send holds "
        "one for a single round trip: 10 carry a process' whole CPU on the message path.",
    )
    db_max_overflow: int = Field(
        0,
        ge=0,
        description="Extra connections under bursts, each closed when returned to a full pool "
        "(0: callers wait for a pooled one, up to DB_POOL_TIMEOUT).",
    )
    db_pool_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    db_prepared_statements: bool = Field(
        True,
        description="Let psycopg prepare statements run often (PostgreSQL then plans them once). "
        "Set false behind a transaction-mode pooler that does not track prepared statements "
        "(PgBouncer before 1.21, or without max_prepared_statements).",
    )

    redis_url: str | None = Field(
        None, description="Redis URL. Unset: an embedded Redis under DATA_DIR."
    )
    redis_prefix: str = Field("rhq:", description="Prefix of every Redis key and channel.")
    redis_max_connections: int = Field(
        100,
        ge=2,
        description="Most Redis connections a process opens per client (the app's, the "
        "Socket.IO manager's); callers past it wait for a free one instead of failing.",
    )
    redis_pool_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds to wait for a free Redis connection before failing."
    )

    master_api_key: str = Field(DEV_MASTER_KEY, description="Operator key for /setup/*.")
    jwt_secret: str = Field(DEV_JWT_SECRET, description="Signs staff access tokens.")
    jwt_refresh_secret: str = Field(DEV_JWT_REFRESH_SECRET, description="Signs refresh tokens.")

    allowed_origins: str = Field(
        "",
        description="Comma-separated origins allowed by CORS (HTTP and Socket.IO), e.g. "
        "`https://shop.example`: every site that embeds the messenger. Each refused origin is "
        "logged once per process as an `origin_refused` warning.",
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated proxy addresses whose X-Forwarded-For is believed."
    )
    max_body_bytes: int = Field(10240, ge=256, description="Largest request body accepted.")
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        description="Largest request line plus headers accepted (431 past it), by `serve`.",
    )

    rate_limit_auth: str = Field(
        "20/15minutes",
        description="Failed API-key and X-Master-Key authentications per client address "
        "(counted apart from staff sign-in).",
    )
    rate_limit_login_account: str = Field(
        "10/15minutes",
        description="Failed staff sign-ins per account, from browsers that have not signed in "
        "to that account before.",
    )
    rate_limit_login_address: str = Field(
        "300/15minutes",
        description="Failed staff sign-ins per client address, from browsers that have not "
        "signed in to the account before (a backstop sized for an office behind one address).",
    )
    rate_limit_login_device: str = Field(
        "10/15minutes",
        description="Failed staff sign-ins per browser, on an account it has signed in to before.",
    )
    login_device_ttl_seconds: int = Field(
        180 * 24 * 3600,
        ge=3600,
        description="How long a browser that signed in to an account is remembered as one that "
        "did (its sign-in limits are its own; see docs/admin-api.md).",
    )
    rate_limit_token_failures: str = Field(
        "60/15minutes",
        description="Failed refreshes per client address, and apart from them failed "
        "invitation acceptances and password-reset or e-mail-change links.",
    )
    rate_limit_setup: str = Field("60/15minutes", description="/setup requests per address.")
    rate_limit_v1: str = Field("100/15minutes", description="/v1 requests per app and device.")
    rate_limit_v1_ip: str = Field("1000/15minutes", description="/v1 requests per address.")
    rate_limit_socket_typing: str = Field(
        "10/10seconds", description="Socket `typing` events per socket (burst, then even rate)."
    )
    rate_limit_socket_read: str = Field(
        "30/10seconds", description="Socket `read` events per socket (burst, then even rate)."
    )
    rate_limit_socket_sync: str = Field(
        "60/minute", description="Socket `sync` events per socket (burst, then even rate)."
    )
    rate_limit_enabled: bool = Field(True, description="Turn every rate limit off (tests only).")

    bcrypt_rounds: int = Field(12, ge=4, le=16, description="Cost of stored key hashes.")
    api_key_cache_ttl_seconds: float = Field(
        60.0, ge=0, description="How long a verified key is trusted without bcrypt."
    )
    access_token_ttl_seconds: int = Field(
        900, ge=60, le=3600, description="Life of a staff access token (JWT)."
    )
    refresh_token_ttl_seconds: int = Field(
        7 * 24 * 3600,
        ge=3600,
        description="How long a staff sign-in lasts unused: each refresh extends it by this much.",
    )
    staff_session_max_age_seconds: int = Field(
        30 * 24 * 3600,
        ge=3600,
        description="Absolute life of a staff sign-in, however often it is refreshed: past it, "
        "a refresh is refused (401 `SIGN_IN_EXPIRED`) and the member signs in again.",
    )
    invite_ttl_seconds: int = Field(
        72 * 3600, ge=300, description="How long a team invitation can be accepted."
    )
    dashboard_url: str = Field(
        "", description="Base URL of the dashboard, for invitation links (relative when empty)."
    )

    public_url: str = Field(
        "",
        description="Public base URL of this server (e.g. https://support.example.com), for "
        "links in e-mails. Unset: the address `serve` listens on.",
    )
    smtp_host: str | None = Field(
        None,
        description="SMTP server that sends the product's e-mail. Unset: `serve` in development "
        "starts a local sink (mails on the console and at /dev/mailbox); elsewhere mail jobs "
        "fail, and are retried, until it is set.",
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Port of SMTP_HOST.")
    smtp_username: str | None = Field(None, description="SMTP login, when the server wants one.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="`starttls` (upgrade a plain connection, port 587), `tls` (TLS from the "
        "first byte, port 465) or `none` (a local relay only).",
    )
    smtp_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for the SMTP server; a timeout is retried."
    )
    mail_from: str = Field(
        "ReplyHQ <no-reply@replyhq.local>", description="Sender of every e-mail (From:)."
    )
    password_reset_ttl_seconds: int = Field(
        1800, ge=300, le=86400, description="How long a password-reset link works (once)."
    )
    email_change_ttl_seconds: int = Field(
        86400, ge=300, le=7 * 86400, description="How long an e-mail change link works (once)."
    )
    rate_limit_password_reset: str = Field(
        "5/hour", description="Password-reset requests per e-mail address."
    )
    rate_limit_password_reset_ip: str = Field(
        "50/hour", description="Password-reset requests per client address."
    )

    signup_enabled: bool = Field(
        True,
        description="Let anyone create an app and its owner at POST /admin/signup (the "
        "dashboard's 'Create an account'). false: 403 `SIGNUP_DISABLED`; apps are then made "
        "by the operator only (POST /setup/apps).",
    )
    signup_min_password_score: int = Field(
        3,
        ge=0,
        le=4,
        description="Weakest password a sign-up accepts, as zxcvbn's 0-4 score (3: safely "
        "unguessable); weaker ones are 400 `WEAK_PASSWORD`.",
    )
    rate_limit_signup: str = Field(
        "5/hour", description="Sign-ups (and verification e-mails) per e-mail address."
    )
    rate_limit_signup_ip: str = Field("20/hour", description="Sign-ups per client address.")
    email_verify_ttl_seconds: int = Field(
        7 * 86400,
        ge=300,
        le=30 * 86400,
        description="How long the link of a sign-up's verification e-mail works (once).",
    )
    stripe_secret_key: str | None = Field(
        None,
        description="Stripe secret key (sk_live_… or sk_test_…). Unset: billing is off "
        "(self-hosted): no plans, no trial, no limits; `make dev` sets the local fake Stripe's.",
    )
    stripe_webhook_secret: str | None = Field(
        None,
        description="Signing secret of the Stripe webhook endpoint (whsec_…) that posts to "
        "/webhooks/stripe; events whose signature does not match it are refused.",
    )
    stripe_api_base: str = Field(
        "https://api.stripe.com",
        description="Where the Stripe library sends its API calls: Stripe, or a local fake "
        "(replyhq.billing.fake_stripe, as `make dev` and the tests do).",
    )
    stripe_price_starter: str = Field(
        "price_replyhq_starter", description="Stripe price id of the Starter plan ($29 a month)."
    )
    stripe_price_growth: str = Field(
        "price_replyhq_growth", description="Stripe price id of the Growth plan ($99 a month)."
    )
    stripe_price_business: str = Field(
        "price_replyhq_business", description="Stripe price id of the Business plan ($299 a month)."
    )
    billing_trial_days: int = Field(
        14, ge=1, le=60, description="Length of the free trial every new app starts with."
    )
    billing_usage_flush_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a process writes the usage it counted (messages, active end "
        "users) to the database; a process that crashes loses at most this much counting.",
    )

    presence_ttl_seconds: float = Field(
        60.0, gt=0, description="A socket not heard from for this long counts as gone."
    )
    socket_ping_interval_seconds: float = Field(25.0, gt=0, description="Socket.IO ping interval.")
    socket_ping_timeout_seconds: float = Field(20.0, gt=0, description="Socket.IO ping timeout.")
    socket_access_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a process trusts the access generation it read for a socket's next "
        "events; after a revocation Redis did not deliver, an active socket is cut within this.",
    )
    socket_access_sweep_seconds: float = Field(
        15.0,
        gt=0,
        description="How often every socket's access is re-read, idle sockets included: the most "
        "an idle socket outlives a revocation Redis did not deliver.",
    )

    data_dir: Path = Field(
        Path(".replyhq-data"), description="Embedded PostgreSQL and Redis live here."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    sentry_dsn: str | None = Field(None, description="Errors go to Sentry when set.")
    sentry_environment: str | None = Field(
        None, description="Sentry's environment. Unset: ENVIRONMENT."
    )
    sentry_release: str | None = Field(
        None, description="Sentry's release. Unset: replyhq@<version>."
    )
    sentry_traces_sample_rate: float = Field(
        0.1, ge=0, le=1, description="Share of requests and jobs traced in Sentry."
    )

    metrics_token: str | None = Field(
        None, description="When set, /metrics requires `Authorization: Bearer <token>`."
    )
    prometheus_multiproc_dir: Path | None = Field(
        None,
        description="Where the processes of `serve --workers N` share metrics. "
        "Unset: DATA_DIR/prometheus.",
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port where `replyhq worker` serves /metrics (0: off)."
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address where `replyhq worker` serves /metrics."
    )

    jobs_in_process: bool | None = Field(
        None,
        description="Run a job worker inside each server process. "
        "Unset: only when `serve` started the embedded PostgreSQL.",
    )
    job_concurrency: int = Field(10, ge=1, description="Jobs one worker process runs at once.")
    job_max_attempts: int = Field(
        8, ge=1, description="Runs of a failing job before it is dead (`replyhq jobs failed`)."
    )
    job_retry_base_seconds: float = Field(
        2.0, gt=0, description="Delay before the first retry; it doubles each time (jittered)."
    )
    job_retry_max_seconds: float = Field(
        3600.0, gt=0, description="Longest delay between two runs of a failing job."
    )
    job_poll_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a worker looks for due scheduled or retried jobs "
        "(new jobs arrive at once through LISTEN/NOTIFY).",
    )
    job_heartbeat_seconds: float = Field(
        10.0, gt=0, description="How often a worker records that it is alive."
    )
    job_stalled_after_seconds: float = Field(
        60.0, gt=0, description="A worker silent this long is dead; its running jobs are retried."
    )
    job_stalled_check_seconds: float = Field(
        30.0, gt=0, description="How often workers look for the jobs of dead workers."
    )
    job_shutdown_timeout_seconds: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long running jobs may take to finish before they are "
        "released for another worker to retry.",
    )
    job_delete_succeeded: bool = Field(
        True, description="Delete a job's row once it succeeds (dead jobs are always kept)."
    )
    job_retention_days: float = Field(
        30.0, gt=0, description="Finished jobs older than this are deleted by the daily clean-up."
    )
    job_import_paths: str = Field(
        "", description="Extra comma-separated modules whose tasks workers load (plugins, tests)."
    )
    event_retention_days: int = Field(
        90,
        ge=1,
        le=365,
        description="Tracked events (and their daily counts) older than this many days are "
        "dropped, a day's partition at a time.",
    )
    event_flush_delay_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long a flush waits for more event batches to join it before one "
        "INSERT writes them all. `0`: at once; batches that arrive while the app's flushes are "
        "running join the next one ([analytics.md](analytics.md#benchmark)).",
    )
    event_flush_max_events: int = Field(
        2000, ge=100, description="Most events one flush writes (whole requests only)."
    )
    event_flush_concurrency: int = Field(
        2,
        ge=1,
        le=8,
        description="Flushes of one app's events a process runs at once: a batch that arrives "
        "while one is waiting for its commit starts the next rather than waiting behind it.",
    )
    rate_limit_socket_track: str = Field(
        "100/10seconds", description="`track` events per socket (burst, then that rate)."
    )
    segment_timeout_ms: int = Field(
        5000, ge=100, description="Statement timeout of a segment's queries (preview, members)."
    )

    push_credentials_key: str = Field(
        DEV_PUSH_CREDENTIALS_KEY,
        description="Fernet key(s) encrypting each app's push credentials at rest: 32 random "
        "bytes in URL-safe base64, as `cryptography`'s `Fernet.generate_key()` makes. "
        "Comma-separated to rotate: the first encrypts, every one decrypts. In production, "
        "credentials are refused (409) until it is set.",
    )
    fcm_base_url: str = Field(
        "https://fcm.googleapis.com",
        description="FCM HTTP v1 API (`/v1/projects/…/messages:send`).",
    )
    fcm_token_url: str = Field(
        "https://oauth2.googleapis.com/token",
        description="OAuth 2.0 token endpoint a service account's signed JWT is exchanged at.",
    )
    apns_production_url: str = Field(
        "https://api.push.apple.com", description="APNs endpoint (HTTP/2) for production apps."
    )
    apns_sandbox_url: str = Field(
        "https://api.sandbox.push.apple.com",
        description="APNs endpoint (HTTP/2) for apps set to sandbox (development builds).",
    )
    webpush_allowed_hosts: str = Field(
        "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,"
        "*.notify.windows.com,web.push.apple.com",
        description="Comma-separated hosts a Web Push subscription's endpoint may name (`*.` "
        "for subdomains); others are refused at registration, so that no end user makes the "
        "server call an address of their choice.",
    )
    push_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for a push provider's answer."
    )
    push_max_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="Sends of one push to one device when the provider answers 429 or 5xx "
        "(each retry after its Retry-After, or a doubling back-off).",
    )
    push_hold_seconds: float = Field(
        5.0,
        ge=0,
        description="When the person is online as a reply is committed, how long to wait "
        "before deciding: a push is skipped if they read it meanwhile or are still online.",
    )
    push_log_retention_days: int = Field(
        30, ge=1, description="Push and e-mail fallback decisions older than this are deleted."
    )

    attachment_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1,
        description="Largest attachment (one file), in bytes; a larger upload is refused with 413 "
        "while it streams.",
    )
    attachment_types: str = Field(
        "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,application/zip",
        description="Comma-separated types an attachment may be, as found in its first bytes "
        "(never its name or declared type). Images among them get a thumbnail.",
    )
    attachment_storage: Literal["local", "s3"] = Field(
        "local",
        description="Where attachments' bytes go: `local` (ATTACHMENT_DIR) or `s3` (an "
        "S3-compatible object storage: ATTACHMENT_S3_*).",
    )
    attachment_dir: Path | None = Field(
        None, description="Folder of the `local` storage. Unset: `attachments` under DATA_DIR."
    )
    attachment_s3_bucket: str | None = Field(None, description="Bucket of the `s3` storage.")
    attachment_s3_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible service (MinIO, R2, ...). Unset: AWS S3.",
    )
    attachment_s3_region: str | None = Field(None, description="Region of the bucket.")
    attachment_s3_access_key_id: str | None = Field(
        None, description="Access key of the `s3` storage. Unset: boto3's own chain (env, role)."
    )
    attachment_s3_secret_access_key: str | None = Field(
        None, description="Secret of ATTACHMENT_S3_ACCESS_KEY_ID."
    )
    attachment_url_ttl_seconds: int = Field(
        300,
        ge=10,
        le=86400,
        description="How long a signed download URL works (they are handed out with messages "
        "and by GET .../attachments/{id}).",
    )
    attachment_thumbnail_px: int = Field(
        320, ge=32, le=2048, description="Longest side of an image attachment's thumbnail."
    )
    attachment_pending_hours: int = Field(
        24, ge=1, description="Uploads never sent in a message are deleted after this long."
    )

    @field_validator("push_credentials_key")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        from replyhq.push.crypto import check_keys

        check_keys(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            defaults = {
                "MASTER_API_KEY": (self.master_api_key, DEV_MASTER_KEY),
                "JWT_SECRET": (self.jwt_secret, DEV_JWT_SECRET),
                "JWT_REFRESH_SECRET": (self.jwt_refresh_secret, DEV_JWT_REFRESH_SECRET),
            }
            weak = [
                name
                for name, (value, default) in defaults.items()
                if value == default or len(value) < MIN_SECRET_LENGTH
            ]
            if weak:
                raise ValueError(
                    f"production needs explicit secrets of at least {MIN_SECRET_LENGTH} "
                    f"characters: {', '.join(weak)}"
                )
        return self

    @model_validator(mode="after")
    def _heartbeat_outlives_stall(self) -> Settings:
        if self.job_stalled_after_seconds <= 2 * self.job_heartbeat_seconds:
            raise ValueError("JOB_STALLED_AFTER_SECONDS must exceed twice JOB_HEARTBEAT_SECONDS")
        return self

    @property
    def billing_enabled(self) -> bool:
        return bool(self.stripe_secret_key)

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def proxies(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()


def markdown_table() -> str:
    """The settings as documented in docs/configuration.md (a test keeps the two equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "(unset)" if field.default is None else f"`{field.default}`"
        rows.append(f"| `{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
