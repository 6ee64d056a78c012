"""The product's settings with the bench's URLs (`bench.urls`: the product's plus the naive peer).

Used by `bench/bench_api.py` only (gunicorn and the in-process capture run with
`DJANGO_SETTINGS_MODULE=bench.settings`), so the peer is never among the product's URLs.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
