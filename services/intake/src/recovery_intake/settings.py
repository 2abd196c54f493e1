"""Intake settings: the admin key, API-key hashing, abuse limits, webhook URL rules, retry defaults."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings

DEVELOPMENT_ADMIN_KEY = "test_admin"
# Admin keys of development setups (intake's default, compose's): public, so never accepted in production.
DEVELOPMENT_ADMIN_KEYS = frozenset({DEVELOPMENT_ADMIN_KEY, "development-admin-key"})
DEVELOPMENT_HASH_SECRET = "development-only-api-key-hash-secret"
_LOOPBACK_HOSTS = "127.0.0.1,localhost,::1"


class IntakeSettings(ServiceSettings):
    # Where Stripe's API is read from for a webhook: Stripe Billing's invoices when their event lacks what a recovery
    # needs, and the PaymentIntent a dispute is on (the payment connector's webhooks).
    stripe_api_base: str = "https://api.stripe.com"
    # Where a file the merchant gives as a dispute's evidence is uploaded to (Stripe's File Upload API, its own host).
    stripe_files_base: str = "https://files.stripe.com"
    # How long, in all, a billing system's or the payment connector's API may take to answer the read a webhook
    # needs (Stripe's invoice or PaymentIntent, Chargebee's invoice, Recurly's transaction): past it the delivery is
    # answered 503 and the sender delivers it again. At most 4.5 s, so that the answer leaves within Recurly's
    # 5-second deadline (a later one counts as failed there).
    billing_api_timeout_seconds: float = Field(default=3.0, gt=0, le=4.5)
    # Only from configuration: there is no API to create or read it.
    admin_api_key: str = Field(default=DEVELOPMENT_ADMIN_KEY, min_length=8, repr=False)
    # Server-side secret of the keyed hash under which merchant API keys are stored.
    api_key_hash_secret: str = Field(default=DEVELOPMENT_HASH_SECRET, min_length=16, repr=False)
    # Where intake forwards the events API and the process-tracker API (the owners of that data).
    dispatcher_internal_url: str = "http://127.0.0.1:8083"
    scheduler_internal_url: str = "http://127.0.0.1:8081"
    # Where intake forwards the read side's routes (recovery list, recovery intent, analytics, timeline).
    analytics_internal_url: str = "http://127.0.0.1:8084"
    # How long intake waits for the service it forwards a request to (and the console's reads) before answering.
    internal_timeout_seconds: float = Field(default=20.0, gt=0)
    # How long monitoring watches a profile's recoveries before the active algorithm takes over (0: forever).
    monitoring_threshold_seconds: int = Field(default=0, ge=0)
    # How long intake keeps API keys, profiles, connector accounts and whether a merchant keeps uploaded card data
    # in process memory (0: always read). A change made through another intake instance (a revoked key) applies here
    # within this time; a merchant's first card-data upload answers only after it.
    config_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # How long the audit trail keeps an entry (what the merchant's callers did: GET /v2/audit-events).
    audit_retention_days: int = Field(default=400, ge=1, le=3650)
    # Abuse limits. A larger body answers 413 (uploads have their own bounds: the data backfill's 5 MiB and 64 KiB, a
    # dispute's evidence file 5,000,000 bytes and 64 KiB); per API key (or per client address without one) a token
    # bucket of `rate_limit_burst` refilled at `rate_limit_per_second` answers 429 with Retry-After (0 disables).
    max_body_bytes: int = Field(default=262_144, ge=1024, le=16_777_216)
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Failed authentications (a key that is unknown, revoked or expired) per client address: a bucket of
    # `auth_failure_burst` refilled at `auth_failure_per_second`; while it is empty every request from the
    # address presenting a key answers 429 with Retry-After, before any key is looked up (0 disables).
    auth_failure_per_second: float = Field(default=1.0, ge=0)
    auth_failure_burst: int = Field(default=30, ge=1)
    # Both limits are also counted once for every intake instance (MongoDB's `rate_limits`, one update per request
    # the process lets through): N instances do not give a key N times the rate. false: per process only.
    rate_limit_shared: bool = True
    # How long an unknown key's hash is remembered (per process, at most 10,000), so that presenting it again
    # costs no database read. A key created through any instance is new to every cache (random, never presented).
    unknown_api_key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    # Per merchant: API keys neither revoked nor expired, and profiles; creating one more answers 400 IR_16.
    max_api_keys_per_merchant: int = Field(default=100, ge=1, le=10_000)
    max_profiles_per_merchant: int = Field(default=50, ge=1, le=10_000)
    # How many later requests for an invoice its intent keeps (the latest; older ones are dropped).
    intent_requests_kept: int = Field(default=50, ge=1, le=1000)
    # Hosts whose webhook (and record-back) URLs may be plain http; every other URL must be https. Unset: the
    # loopback hosts in development, none in production.
    webhook_url_allow_http_hosts: str | None = None
    # How long a rotated-out Standard Webhooks secret keeps signing next to the new one.
    webhook_secret_overlap_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    # How often intake retires rotated-out secrets whose overlap has ended.
    secret_retirement_interval_seconds: float = Field(default=30.0, gt=0)
    # The executor's internal address: a process-tracker resume of PSYNC_WORKFLOW (a record back, or a dispute's
    # refund record, started again) is forwarded there, and the console's operator page reads its readiness
    # (`/readyz`); unset: neither.
    executor_internal_url: str | None = None

    @property
    def http_allowed_hosts(self) -> frozenset[str]:
        listing = self.webhook_url_allow_http_hosts
        if listing is None:
            listing = "" if self.is_production else _LOOPBACK_HOSTS
        return frozenset(h.strip().lower().strip("[]") for h in listing.split(",") if h.strip())

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.admin_api_key in DEVELOPMENT_ADMIN_KEYS:
            problems.append(
                f"ADMIN_API_KEY is {self.admin_api_key!r}, a development key anyone can read in this repository:"
                " set a random one of at least 32 characters"
            )
        elif len(self.admin_api_key) < 32:
            problems.append("ADMIN_API_KEY is shorter than 32 characters")
        if self.api_key_hash_secret == DEVELOPMENT_HASH_SECRET or len(self.api_key_hash_secret) < 32:
            problems.append("API_KEY_HASH_SECRET is the development default or shorter than 32 characters")
        return problems
