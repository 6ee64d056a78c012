"""Routes of one tenant's cockpit, under /cockpit/<tenant slug>/ (config/urls.py)."""

from django.urls import path

from rewards.cockpit import calculator, i18n, views

app_name = "cockpit"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in", views.sign_in, name="sign-in"),
    path("sign-in/<str:token>", views.link, name="link"),
    path("sign-out", views.sign_out, name="sign-out"),
    path("language", i18n.language_pick, name="language"),
    path("history", views.ledger, name="ledger"),
    path("rewards", views.catalog, name="catalog"),
    path("rewards/<int:reward_id>/redeem", views.reward_redeem, name="reward-redeem"),
    path("codes/<str:code>", views.code_detail, name="code"),
    path("calculator", calculator.calculator, name="calculator"),
]
