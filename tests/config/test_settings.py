import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), 'debug': settings.DEBUG, "
    "'hosts': settings.ALLOWED_HOSTS, 'eager': settings.CELERY_TASK_ALWAYS_EAGER, "
    "'broker': settings.CELERY_BROKER_URL, 'cache': settings.CACHES['default']['BACKEND'], "
    "'tz': settings.TIME_ZONE, 'use_tz': settings.USE_TZ, 'email': settings.EMAIL_BACKEND}))"
)


def _load(env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_defaults_need_no_services():
    result = _load({"SECRET_KEY": "s"})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["eager"] is True
    assert loaded["broker"] == "memory://"
    assert loaded["cache"].endswith("LocMemCache")
    assert loaded["debug"] is False
    assert loaded["use_tz"] is True


def test_services_and_options_come_from_the_environment():
    result = _load(
        {
            "SECRET_KEY": "s",
            "DATABASE_URL": "postgres://u:p@db.example:5432/loyalty",
            "REDIS_URL": "redis://cache.example:6379/2",
            "DEBUG": "true",
            "ALLOWED_HOSTS": "shop.example,admin.example",
            "TIME_ZONE": "Europe/Berlin",
            "EMAIL_URL": "smtp://mail.example:25",
        }
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "config.postgresql"  # Django's, with a health check without a round trip
    assert loaded["name"] == "loyalty"
    assert loaded["eager"] is False
    assert loaded["broker"] == "redis://cache.example:6379/2"
    assert loaded["cache"].endswith("RedisCache")
    assert loaded["debug"] is True
    assert loaded["hosts"] == ["shop.example", "admin.example"]
    assert loaded["tz"] == "Europe/Berlin"
    assert loaded["email"].endswith("smtp.EmailBackend")


def test_missing_secret_key_without_debug_refuses_to_start():
    result = _load({})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
