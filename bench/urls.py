"""The product's URLs (`config.urls`) plus the bench's naive redemption peer (`bench.peer`)."""

from django.urls import include, path

from bench.peer import NaiveRedemptionView

urlpatterns = [
    path("bench/naive-redemption", NaiveRedemptionView.as_view(), name="bench-naive-redemption"),
    path("", include("config.urls")),
]
