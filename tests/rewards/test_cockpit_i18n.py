"""The cockpit in English, German and Turkish: which language a page and a sign-in email get (the switcher's pick,
else Accept-Language, else the tenant's locale), numbers, money and dates per language, the admin and the API left
in LANGUAGE_CODE, and catalogs in which every string is translated."""

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest
import time_machine
from babel.messages.pofile import read_po
from django.conf import settings
from django.test import Client

from loyalty.ledger import points_adjust
from loyalty.models import LedgerEntry
from rewards.cockpit.formats import LEDGER_KIND_LABELS, incentive, money, points
from tests.factories import MemberFactory, ProgramFactory, RewardFactory, UserFactory
from tests.rewards.cockpit_helpers import (
    empty_cache,  # noqa: F401 (autouse fixture)
    sign_in,
    url,
)

pytestmark = pytest.mark.django_db

CATALOGS = sorted(Path(settings.BASE_DIR, "locale").glob("*/LC_MESSAGES/django.po"))


@pytest.fixture
def program(tenant):
    return ProgramFactory(tenant=tenant, points_name="", expiry_policy={"policy": "days", "days": 30})


@pytest.fixture
def member(tenant, program):
    member = MemberFactory(tenant=tenant, name="Ada Lovelace", email="ada@example.com")
    points_adjust(points=1234, reason="welcome", staff_user=UserFactory(), member=member, program=program)
    return member


def body(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def ask_for_link(client, tenant, capture, **headers):
    with capture(execute=True):
        return client.post(url("sign-in", tenant), {"email": "ada@example.com"}, headers=headers)


# --- the catalogs ----------------------------------------------------------------------------------------------


def test_catalogs_exist_for_german_and_turkish():
    assert {po.parent.parent.name for po in CATALOGS} == {"de", "tr"}


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda p: p.parent.parent.name)
def test_every_message_of_a_catalog_is_translated_and_none_is_fuzzy(po_path):
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file)
    assert not catalog.fuzzy, "the header is marked fuzzy"
    messages = [message for message in catalog if message.id]
    assert len(messages) > 50
    untranslated = [
        message.id
        for message in messages
        if message.fuzzy or not all(message.string if message.pluralizable else [message.string])
    ]
    assert untranslated == []


def test_every_ledger_kind_has_a_member_facing_label():
    assert set(LEDGER_KIND_LABELS) == set(LedgerEntry.Kind.values)


# --- which language ----------------------------------------------------------------------------------------------


def test_a_german_tenant_s_sign_in_page_is_german(tenant):
    tenant.locale = "de"
    tenant.save()
    response = Client().get(url("sign-in", tenant))
    html = body(response)
    assert '<html lang="de">' in html
    assert "Anmeldelink senden" in html and "Ihre E-Mail-Adresse" in html
    assert "Send me a sign-in link" not in html
    assert response["Content-Language"] == "de"
    assert "Accept-Language" in response["Vary"]


def test_the_browser_s_language_wins_over_the_tenant_s_locale(tenant):
    tenant.locale = "de"
    tenant.save()
    html = body(Client().get(url("sign-in", tenant), headers={"accept-language": "fr-FR,tr-TR;q=0.8,de;q=0.5"}))
    assert '<html lang="tr">' in html and "Bana giriş bağlantısı gönder" in html


def test_a_browser_language_the_cockpit_does_not_offer_falls_back_to_the_tenant_s_locale(tenant):
    tenant.locale = "tr_TR"
    tenant.save()
    html = body(Client().get(url("sign-in", tenant), headers={"accept-language": "fr, ja;q=0.5"}))
    assert '<html lang="tr">' in html


def test_an_english_tenant_without_a_browser_language_is_english(tenant):
    html = body(Client().get(url("sign-in", tenant)))
    assert '<html lang="en">' in html and "Send me a sign-in link" in html


def test_the_switcher_keeps_the_picked_language_for_the_cockpit_over_the_browser_s(tenant, member):
    client = Client(headers={"accept-language": "en-GB,en;q=0.9"})
    sign_in(client, member)
    response = client.post(url("language", tenant), {"language": "de", "next": url("ledger", tenant) + "?page=1"})
    assert response.status_code == 303 and response["Location"] == url("ledger", tenant) + "?page=1"
    cookie = response.cookies[settings.COCKPIT_LANGUAGE_COOKIE]
    assert cookie.value == "de" and cookie["path"] == "/cockpit/" and cookie["httponly"] and cookie["max-age"]
    html = body(client.get(url("ledger", tenant)))
    assert "Ihr Verlauf" in html and "Korrigiert" in html  # the ledger's "adjust", in the member's words
    assert 'aria-pressed="true">Deutsch' in html
    assert 'aria-pressed="false">English' in html and 'aria-pressed="false">Türkçe' in html  # each in its own


def test_the_switcher_refuses_an_unknown_language_and_a_next_page_outside_the_cockpit(tenant):
    client = Client()
    response = client.post(url("language", tenant), {"language": "xx", "next": "https://evil.example/"})
    assert response.status_code == 303 and response["Location"] == url("home", tenant)
    assert settings.COCKPIT_LANGUAGE_COOKIE not in response.cookies
    assert client.get(url("language", tenant)).status_code == 405


def test_the_switcher_needs_the_csrf_token(tenant):
    client = Client(enforce_csrf_checks=True)
    assert client.post(url("language", tenant), {"language": "de"}).status_code == 403


def test_the_admin_and_the_api_keep_the_site_language(tenant):
    client = Client(headers={"accept-language": "de"})
    client.cookies[settings.COCKPIT_LANGUAGE_COOKIE] = "de"
    admin = client.get("/admin/login/")
    assert "Log in" in admin.content.decode() and admin.get("Content-Language") != "de"
    api = client.get("/api/v1/members/nobody")
    assert api.status_code in (401, 403) and "Anmelde" not in api.content.decode()
    assert api.get("Content-Language") != "de"


# --- the sign-in email --------------------------------------------------------------------------------------------


def test_the_sign_in_email_is_in_the_language_the_member_asked_in(
    tenant, member, mailoutbox, django_capture_on_commit_callbacks
):
    ask_for_link(Client(), tenant, django_capture_on_commit_callbacks, accept_language="de-DE,de;q=0.9")
    (email,) = mailoutbox
    assert email.subject == f"Ihr Anmeldelink für {tenant.name}"
    assert "Öffnen Sie diesen Link" in email.body and "Hallo Ada Lovelace," in email.body
    assert email.extra_headers["Content-Language"] == "de"


def test_the_sign_in_email_is_in_the_picked_language_and_else_the_tenant_s(
    tenant, member, mailoutbox, django_capture_on_commit_callbacks
):
    tenant.locale = "tr"
    tenant.save()
    ask_for_link(Client(), tenant, django_capture_on_commit_callbacks)
    picked = Client()
    picked.cookies[settings.COCKPIT_LANGUAGE_COOKIE] = "en"
    ask_for_link(picked, tenant, django_capture_on_commit_callbacks, accept_language="de")
    turkish, english = mailoutbox
    assert turkish.subject == f"{tenant.name} giriş bağlantınız" and "bağlantıyı açın" in turkish.body
    assert english.subject == f"Your sign-in link to {tenant.name}"


# --- numbers, money, dates -----------------------------------------------------------------------------------------


def test_points_money_and_dates_are_written_the_language_s_way(tenant, program):
    with time_machine.travel(dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC), tick=False):
        member = MemberFactory(tenant=tenant, name="Ada Lovelace")
        points_adjust(points=1234, reason="welcome", staff_user=UserFactory(), member=member, program=program)
        RewardFactory(tenant=tenant, name="Hamper", points_cost=1500, value=D("1234.50"))
        client = Client()
        sign_in(client, member)

        english = body(client.get(url("home", tenant), headers={"accept-language": "en"}))
        german = body(client.get(url("home", tenant), headers={"accept-language": "de"}))
        turkish = body(client.get(url("home", tenant), headers={"accept-language": "tr"}))
        german_catalog = body(client.get(url("catalog", tenant), headers={"accept-language": "de"}))

    assert 'data-testid="balance">1,234<' in english and "1,234 points on Dec. 1, 2026" in english
    assert 'data-testid="balance">1.234<' in german and "1.234 Punkte am 1. Dezember 2026" in german
    assert 'data-testid="balance">1.234<' in turkish and "01 Aralık 2026 tarihinde 1.234 puan" in turkish
    assert "1.500 Punkte" in german_catalog and "im Wert von 1.234,50\xa0€" in german_catalog


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ("12,345", "€1,234.50", "15% off", "€5.00 off", "Free shipping")),
        ("de", ("12.345", "1.234,50\xa0€", "15\xa0% Rabatt", "5,00\xa0€ Rabatt", "Kostenloser Versand")),
        ("tr", ("12.345", "€1.234,50", "%15 indirim", "€5,00 indirim", "Ücretsiz kargo")),
    ],
)
def test_the_formatting_filters_follow_the_active_language(language, expected):
    from django.utils import translation

    with translation.override(language):
        got = (points(12345), money("1234.50", "EUR"), incentive("15%", "EUR"), incentive("5.00", "EUR"))
        got += (incentive("free_shipping", "EUR"),)
    assert got == expected
