"""The product's URLs (`config.urls`) plus the bench's naive redemption peer (`bench.peer`), and the bench's
switch for evaluation traces (see `bench.settings`)."""

from django.conf import settings
from django.urls import include, path

from bench.peer import NaiveRedemptionView


def traces_switch(get_response):
    def middleware(request):
        settings.EVALUATION_TRACES = request.headers.get("X-Bench-Traces") != "off"
        return get_response(request)

    return middleware


urlpatterns = [
    path("bench/naive-redemption", NaiveRedemptionView.as_view(), name="bench-naive-redemption"),
    path("", include("config.urls")),
]
