"""Routes of one tenant's cockpit, under /cockpit/<tenant slug>/ (config/urls.py)."""

from django.urls import path

from rewards.cockpit import calculator, i18n, privacy, views

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
    path("personal-data", privacy.personal_data, name="personal-data"),
    path("personal-data/consent", privacy.consent, name="consent"),
    path("terms", privacy.terms, name="terms"),
    path("terms/accept", privacy.terms_accept_view, name="terms-accept"),
    path("my-data.json", privacy.export, name="export"),
    path("erasure", privacy.erasure, name="erasure"),
    path("erasure/cancel", privacy.erasure_cancel, name="erasure-cancel"),
]
