"""Settings, read from the environment (django-environ) so one build runs anywhere.

Defaults need no services: SQLite and in-process (eager) Celery. Set DATABASE_URL and REDIS_URL
for PostgreSQL, a Redis broker and a Redis cache.
"""

import datetime
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable (or DEBUG=true for a "
            "local, insecure development run)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "guardian",
    "simple_history",
    "django_celery_beat",
    "import_export",
    "axes",  # sign-in attempts, lockouts (its admin unlocks)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "members",
    "loyalty",
    "campaigns",
    "integrations",
    "rewards",
    "api",
    "reports",
    "django_htmx",
    # Last: holds cross-app management commands (the demo loader) and the health view.
    "config",
]

# The staff site's middleware (config.middleware) passes the touchpoint API's requests straight through.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.OTPMiddleware",
    "config.staff_security.OTPRequiredMiddleware",
    "rewards.cockpit.i18n.CockpitLanguageMiddleware",  # before messages: they are stored in the member's language
    "config.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.HistoryRequestMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
MIDDLEWARE += ["api.middleware.RequestIdMiddleware"]  # Request-Id header; JSON 500s under /api/
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as django-axes asks: turns a lockout into its page

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections: opening one per request costs more than the redemption itself.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A reused connection is checked before each request uses it, by a look at its socket (no round trip; see
    # config/postgresql/base.py); DB_HEALTH_CHECKS=false skips that (a connection that died then fails its
    # request once, and is replaced for the next).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_HEALTH_CHECKS", default=True)
    # Prepared statements: server-side parameter binding, and psycopg prepares a statement on this connection
    # once it has run DB_PREPARE_THRESHOLD times (PostgreSQL then skips parsing and planning it again). Behind
    # a transaction-pooling PgBouncer older than 1.21, set DB_PREPARE_THRESHOLD=off.
    _prepare = env.str("DB_PREPARE_THRESHOLD", default="2")
    if _prepare.lower() != "off":
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=int(_prepare))
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # each service owns its transaction
# Reports read from a replica when one is configured (reports.selectors.report_database); writes never go there.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out sign-in before the password is checked (needs `authenticate(request, ...)`).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_RAISE_403 = True
# A version is restored through its service (members.admin_history), never by saving the historical row.
SIMPLE_HISTORY_REVERT_DISABLED = True
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: every staff action is by a named person

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
# The languages of the member cockpit (and the calculator), chosen per request by
# rewards.cockpit.i18n.CockpitLanguageMiddleware; the admin and the API keep LANGUAGE_CODE. The catalogs are
# locale/<lang>/LC_MESSAGES/django.po, compiled by `make messages` (`manage.py compile_translations`).
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("tr", "Türkçe")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True  # stored in UTC; windows are computed in each tenant's own time zone

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="loyalty@localhost")

# --- Redis: broker and cache when configured, in-process otherwise -----------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Seconds to wait for Redis to connect or answer before a request falls back (throttling per process,
# tasks left for their sweeps): an unreachable Redis must not hold a request for long.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=1.0)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="loyalty"),
            "OPTIONS": {"socket_connect_timeout": REDIS_SOCKET_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT},
        }
    }
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_EAGER_PROPAGATES = True
# Nothing reads task results (the state is in the database): publishing a task then needs only the broker,
# not the result backend too (whose reconnect loop blocks a caller for 20 s while Redis is down).
CELERY_TASK_IGNORE_RESULT = True
# No task may be lost: every task is acknowledged after it ran, and put back in the queue when the worker
# running it dies (killed, out of memory, restarted), so each task is written to be safe to run again
# (tests/config/test_celery_reliability.py checks every registered task and a real redelivery).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long tasks: a worker reserves one message at a time
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
# Redis redelivers a message not acknowledged within the visibility timeout, to another worker, even if
# the first is still running it: it must exceed the longest task time limit (tiers: 1 h) and the longest
# countdown (webhook retries: 10 min). `tests/config/test_celery_reliability.py` holds it to that.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 60 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
}
# A publish retries briefly (a blip), then the caller logs it and goes on (common.side_effects).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic job, in one place. Beat syncs these into django-celery-beat's tables at start;
# marketers may pause or re-time them in the admin.
CELERY_BEAT_SCHEDULE = {
    "health-ping": {"task": "config.tasks.ping", "schedule": 300.0},
    "webhooks-dispatch-due": {"task": "integrations.dispatch_due_webhooks", "schedule": 60.0},
    "idempotency-purge": {"task": "integrations.purge_idempotency_records", "schedule": 3600.0},
    # Ledger: every job is set-based and safe to re-run.
    "points-expire": {"task": "loyalty.tasks.expire_points", "schedule": 900.0},
    "points-pending-release": {"task": "loyalty.tasks.release_pending_points", "schedule": 900.0},
    "points-expiry-warnings": {"task": "loyalty.tasks.send_expiry_warnings", "schedule": 3600.0},
    "ledger-reconcile": {"task": "loyalty.tasks.reconcile_ledger", "schedule": 86400.0},
    "tiers-reevaluate": {"task": "loyalty.tasks.reevaluate_tiers", "schedule": 86400.0},
    # Campaigns: pause campaigns whose redemption rate or budget burn runs away.
    "campaigns-circuit-breaker": {"task": "campaigns.tasks.circuit_breaker_sweep", "schedule": 60.0},
    # Campaign triggers on birthdays and segment entry: once per tenant-local day, checked hourly.
    "campaigns-daily-triggers": {"task": "campaigns.tasks.daily_triggers_sweep", "schedule": 3600.0},
    # Campaigns: reminder sequences, one sweep over their state table (writes what fell due, sends it in batches).
    "campaigns-reminders-sweep": {"task": "campaigns.tasks.reminders_sweep", "schedule": 300.0},
    # Support: evaluation traces older than TRACE_RETENTION_DAYS go.
    "evaluation-traces-prune": {"task": "rewards.tasks.prune_evaluation_traces", "schedule": 3600.0},
    # Members: erasure requests whose grace period is over are carried out; spent sign-in links and form
    # tokens are forgotten.
    "members-erase-due": {"task": "members.tasks.erase_due_members", "schedule": 3600.0},
    "members-prune-used-tokens": {"task": "members.tasks.prune_used_tokens", "schedule": 3600.0},
    # Reports: fold new rows into the daily rollups; at night recompute the last days from raw rows.
    "reports-rollups-fold": {"task": "reports.tasks.fold_rollups", "schedule": 300.0},
    "reports-rollups-recheck": {"task": "reports.tasks.recheck_rollups", "schedule": crontab(hour=3, minute=30)},
    # Hourly: a tenant's week or month ends at its own midnight; each period goes out once (reports.digests).
    "reports-digests": {"task": "reports.tasks.send_digests", "schedule": crontab(minute=20)},
}
# The member cockpit: how long a sign-in link works, and how many sign-in emails one address (email, or the
# client's IP) may ask for per COCKPIT_SIGN_IN_WINDOW_MINUTES.
COCKPIT_LINK_MINUTES = env.int("COCKPIT_LINK_MINUTES", default=15)
COCKPIT_SIGN_IN_PER_EMAIL = env.int("COCKPIT_SIGN_IN_PER_EMAIL", default=5)
COCKPIT_SIGN_IN_PER_ADDRESS = env.int("COCKPIT_SIGN_IN_PER_ADDRESS", default=30)
COCKPIT_SIGN_IN_WINDOW_MINUTES = env.int("COCKPIT_SIGN_IN_WINDOW_MINUTES", default=15)
# The language a member picked with the cockpit's switcher, kept a year in a cookie of the cockpit's paths only.
COCKPIT_LANGUAGE_COOKIE = "cockpit_language"
# How long the evaluation of each validation and redemption attempt is kept for the "Explain" page.
# GDPR: days between a member's erasure request and its automatic erasure (staff may carry it out before).
ERASURE_GRACE_DAYS = env.int("ERASURE_GRACE_DAYS", default=30)
TRACE_RETENTION_DAYS = env.int("TRACE_RETENTION_DAYS", default=90)
# Reports: the memory each report query may use to sort and hash (PostgreSQL `work_mem`, set for its transaction
# only): the members figures aggregate a row per member.
REPORT_WORK_MEM = env.str("REPORT_WORK_MEM", default="64MB")
# Off: no attempt leaves a trace (the explain pages and the failed attempts list stay empty). For a deployment
# that cannot afford the row per attempt; bench/bench_api.py measures what it costs.
EVALUATION_TRACES = env.bool("EVALUATION_TRACES", default=True)

# --- Webhooks: where deliveries may go ---------------------------------------------------------
# Endpoints are typed in by tenant admins, so by default a delivery goes only to a public address over
# https: a URL naming a private, loopback or link-local address is refused at save, and the address
# each delivery actually connects to is checked before anything is sent (DNS may change after saving).
# Turn these on for local development only (a receiver on 127.0.0.1 or a LAN host, plain http).
WEBHOOK_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", default=False)
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    # One error body for every failure (api/errors.py); API views set auth, scope and throttle.
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_THROTTLE_RATE", default="6000/min")},
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}
# While Redis is unreachable each web process counts on its own: a key's limit is divided by this (set it to
# the number of web processes, e.g. gunicorn's workers, so the sum stays near the limit).
API_THROTTLE_FALLBACK_PROCESSES = env.int("API_THROTTLE_FALLBACK_PROCESSES", default=1)
# Seconds a web process keeps what it read of an API key (integrations.keys): a revoked key is refused by
# every process within this time (0: read the key on every request).
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5)
# How long each process keeps which event kinds a tenant has campaign triggers for (a paid order queues a
# trigger task only for a tenant with such triggers); the process that changes a trigger forgets at once.
TRIGGER_KINDS_SECONDS = env.float("TRIGGER_KINDS_SECONDS", default=5)
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty touchpoint API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (BASE_DIR / "api" / "schema_description.md").read_text(),
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The default enum hook, then the webhook envelope as a documented component (api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_webhook_components",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
SESSION_COOKIE_HTTPONLY = True  # no script reads the session cookie (the CSRF one the admin's forms carry)

# --- Staff sign-in: brute force (django-axes) and the second factor (django-otp) ----------------------------
# After AXES_FAILURE_LIMIT failed sign-ins for one user name from one address, that pair is refused for
# AXES_COOLOFF_MINUTES (0: until unlocked in the admin, "Access attempts"). Every failure is kept
# (AccessFailureLog) for the audit page, as is every sign-in (AccessLog).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
_axes_cooloff = env.int("AXES_COOLOFF_MINUTES", default=30)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=_axes_cooloff) if _axes_cooloff else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# Staff of the Admin role (and superusers) must pass a TOTP device to open the admin when this is on; others
# may set one up. Off by default so that the demo and local runs need no authenticator app.
OTP_REQUIRED_FOR_ADMINS = env.bool("OTP_REQUIRED_FOR_ADMINS", default=False)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Loyalty back office")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # no one reads another user's TOTP key in the admin (nor its QR code)

# --- HTTPS (the README's production configuration turns these on; `check --deploy` is clean with it) ------
# Off by default so that `make demo`, `make run` and the tests work over plain http on 127.0.0.1.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe the instance over plain http
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy: `X-Forwarded-Proto,https` (the header the proxy sets, and its value for
# https). Only set it when the proxy always sets or overwrites that header: a client could send it too.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not all(_proxy_ssl_header):
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER is `<header>,<value>`, e.g. `X-Forwarded-Proto,https`.")
    _header = _proxy_ssl_header[0].strip()
    if not _header.upper().startswith("HTTP_"):
        _header = "HTTP_" + _header.replace("-", "_")
    SECURE_PROXY_SSL_HEADER = (_header.upper(), _proxy_ssl_header[1].strip())

# --- Content-Security-Policy (django-csp) ----------------------------------------------------------------
# Every page is ours or the admin's or Swagger UI's, all served from this origin (whitenoise, the sidecar):
# scripts only from files here, or inline with the per-request nonce (`request.csp_nonce`, the celery-beat
# form override in templates/admin/djcelery/), plus one inline handler of django-import-export's export
# page, allowed by its hash. Styles may be inline: the admin and Swagger UI set `style` attributes and
# Swagger's page has a `<style>` block. Images and fonts from here or `data:` (Swagger UI's icons).
# CSP_REPORT_ONLY=true sends it as Content-Security-Policy-Report-Only (to try a change); CSP_REPORT_URI
# adds where browsers report violations.
_IMPORT_EXPORT_SELECT_ALL = "'sha256-wid4zL8fR53ZYy1ljOepzR77Dn6vWUUxuNnnWWBP3I8='"  # onSelectToggleChange(event)
_csp_directives = {
    "default-src": [SELF],
    "script-src": [SELF, NONCE, "'unsafe-hashes'", _IMPORT_EXPORT_SELECT_ALL],
    "style-src": [SELF, "'unsafe-inline'"],
    "img-src": [SELF, "data:"],
    "font-src": [SELF, "data:"],
    "connect-src": [SELF],
    "object-src": [NONE],
    "base-uri": [SELF],
    "form-action": [SELF],
    "frame-ancestors": [NONE],
}
if env.str("CSP_REPORT_URI", default=""):
    _csp_directives["report-uri"] = [env.str("CSP_REPORT_URI")]
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": _csp_directives}
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": _csp_directives}
