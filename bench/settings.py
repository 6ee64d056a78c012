"""The product's settings with the bench's URLs (`bench.urls`: the product's plus the naive peer).

Used by `bench/bench_api.py` only (gunicorn and the in-process capture run with
`DJANGO_SETTINGS_MODULE=bench.settings`), so the peer is never among the product's URLs. One middleware
more, first: a request with `X-Bench-Traces: off` runs with EVALUATION_TRACES off, so the bench measures the
traces' cost in the same run, interleaved (gunicorn's sync workers serve one request at a time).
"""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"
MIDDLEWARE = ["bench.urls.traces_switch", *MIDDLEWARE]
