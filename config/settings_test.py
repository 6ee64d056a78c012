"""Test settings: the real settings, plus a throwaway secret and eager tasks.

Tasks run eagerly here; a test about the worker starts a real Celery worker against REDIS_URL itself
(a Redis that no worker serves would otherwise make tests hang).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from config.settings import *  # noqa: E402,F403
from config.settings import CACHES, REDIS_URL  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The webhook tests deliver to a real receiver on http://127.0.0.1; the tests of the address checks
# (tests/loyalty/test_webhook_addresses.py) turn these off again.
WEBHOOK_ALLOW_PRIVATE_HOSTS = True
WEBHOOK_ALLOW_HTTP = True
if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = f"test-{os.getpid()}"
