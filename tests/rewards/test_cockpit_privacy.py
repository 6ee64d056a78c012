"""The cockpit's privacy pages: personal data and consent per channel, the program's terms, the data export and
the erasure request; each reaches only the signed-in member's own rows."""

import datetime as dt
import json

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.ledger import points_adjust
from members.models import ConsentChange, ErasureRequest, Member, TermsAcceptance, TermsVersion
from members.services import member_erase
from rewards.cockpit.auth import SESSION_KEY
from rewards.services.catalog import reward_purchase
from tests.factories import (
    CampaignFactory,
    MemberFactory,
    ProgramFactory,
    RewardFactory,
    TenantFactory,
    UserFactory,
    api_key_for,
)
from tests.rewards.cockpit_helpers import (
    empty_cache,  # noqa: F401 (autouse fixture)
    link_path,
    sign_in,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(is_superuser=True)


@pytest.fixture
def program(tenant):
    return ProgramFactory(tenant=tenant, points_name="stars")


@pytest.fixture
def member(tenant, program, staff):
    member = MemberFactory(tenant=tenant, name="Ada Lovelace", email="ada@example.com", phone="+44 20 1234")
    points_adjust(points=1000, reason="welcome", staff_user=staff, member=member, program=program)
    return member


@pytest.fixture
def signed_in(client, member):
    sign_in(client, member)
    return client


def terms_version(tenant, version="1", days_ago=1, text="Be kind."):
    return TermsVersion.objects.create(
        tenant=tenant, version=version, text=text, published_at=timezone.now() - dt.timedelta(days=days_ago)
    )


# --- personal data ----------------------------------------------------------------------------------------


def test_personal_data_page_shows_the_members_data_with_labelled_fields(signed_in, tenant, member):
    response = signed_in.get(url("personal-data", tenant))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'value="ada@example.com"' in page and 'value="Ada Lovelace"' in page
    for name in ("name", "email", "phone", "country", "city", "birth_date"):
        assert f'<label for="id_{name}"' in page
    for channel in ("email", "sms", "push"):
        assert f'<label for="id_consent_{channel}"' in page and f'id="id_consent_{channel}"' in page
    assert page.count('id="id_email"') == 1
    assert url("export", tenant) in page and url("erasure", tenant) in page


def test_a_member_updates_their_personal_data_through_the_service(signed_in, tenant, member):
    data = {"name": "Ada King", "email": "ada.king@example.com", "phone": "", "country": "GB", "city": "London"}
    response = signed_in.post(url("personal-data", tenant), {**data, "birth_date": "1815-12-10"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.name, member.email, member.phone, member.country, member.city) == (
        "Ada King",
        "ada.king@example.com",
        "",
        "GB",
        "London",
    )
    assert member.birth_date == dt.date(1815, 12, 10)
    assert member.history.first().history_change_reason == "updated"  # written by member_upsert


def test_bad_personal_data_is_a_form_error_and_nothing_changes(signed_in, tenant, member):
    response = signed_in.post(
        url("personal-data", tenant), {"name": "Ada", "email": "not an email", "country": "XX", "birth_date": "soon"}
    )
    assert response.status_code == 400
    form = response.context["profile_form"]
    assert {"email", "country", "birth_date"} <= set(form.errors)
    assert 'aria-invalid="true"' in response.content.decode()
    member.refresh_from_db()
    assert member.email == "ada@example.com" and member.name == "Ada Lovelace"


def test_an_email_is_required_to_keep_signing_in(signed_in, tenant, member):
    response = signed_in.post(url("personal-data", tenant), {"name": "Ada", "email": ""})
    assert response.status_code == 400
    member.refresh_from_db()
    assert member.email == "ada@example.com"


def test_a_consent_change_in_the_cockpit_shows_in_the_api_member_object(signed_in, tenant, member):
    with time_machine.travel("2026-06-01 09:30:00+00:00", tick=False):
        assert signed_in.post(url("consent", tenant), {"email": "on", "push": "on"}).status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(tenant)[1]}")
    body = api.get(f"/api/v1/members/{member.external_id}").json()
    assert body["consent"] == {"email": True, "sms": False, "push": True}
    assert body["marketing_consent"] is True
    assert body["consent_changed_at"]["email"].startswith("2026-06-01T09:30:00")
    assert body["consent_changed_at"]["sms"] is None
    changes = ConsentChange.objects.filter(member=member).order_by("channel")
    assert list(changes.values_list("channel", "granted", "source")) == [
        ("email", True, "cockpit"),
        ("push", True, "cockpit"),
    ]
    # Withdrawing: the unticked channel goes off, recorded with its time.
    assert signed_in.post(url("consent", tenant), {"push": "on"}).status_code == 302
    assert api.get(f"/api/v1/members/{member.external_id}").json()["consent"] == {
        "email": False,
        "sms": False,
        "push": True,
    }
    assert ConsentChange.objects.filter(member=member, channel="email", granted=False, source="cockpit").exists()


def test_consent_and_personal_data_need_the_csrf_token(tenant, member):
    client = Client(enforce_csrf_checks=True)
    sign_in(client, member)
    assert client.post(url("consent", tenant), {"email": "on"}).status_code == 403
    assert client.post(url("personal-data", tenant), {"email": "x@example.com"}).status_code == 403
    member.refresh_from_db()
    assert not member.email_consent and member.email == "ada@example.com"


def test_the_privacy_pages_need_a_signed_in_member(client, tenant, member):
    for name in ("personal-data", "terms", "export", "erasure"):
        response = client.get(url(name, tenant))
        assert response.status_code == 302 and response["Location"] == url("sign-in", tenant)


# --- terms ------------------------------------------------------------------------------------------------


def test_home_prompts_for_the_current_terms_until_they_are_accepted(signed_in, tenant, member):
    terms_version(tenant, "1", days_ago=30, text="Old text.")
    current = terms_version(tenant, "2", days_ago=1, text="The current text.")
    TermsVersion.objects.create(tenant=tenant, version="3", text="Draft.", published_at=None)
    TermsVersion.objects.create(
        tenant=tenant, version="4", text="Future.", published_at=timezone.now() + dt.timedelta(days=3)
    )
    home = signed_in.get(url("home", tenant)).content.decode()
    assert 'id="terms-prompt"' in home and "Version 2" in home
    page = signed_in.get(url("terms", tenant)).content.decode()
    assert "The current text." in page and "Old text." not in page and "Draft." not in page
    assert signed_in.post(url("terms-accept", tenant), {"terms": current.pk}).status_code == 302
    acceptance = TermsAcceptance.objects.get(member=member)
    assert acceptance.terms == current and acceptance.accepted_at is not None
    assert 'id="terms-prompt"' not in signed_in.get(url("home", tenant)).content.decode()
    assert "You accepted this version" in signed_in.get(url("terms", tenant)).content.decode()
    # Accepting twice records nothing more.
    signed_in.post(url("terms-accept", tenant), {"terms": current.pk})
    assert TermsAcceptance.objects.filter(member=member).count() == 1


def test_an_older_version_cannot_be_accepted_and_another_tenants_terms_are_404(signed_in, tenant, member):
    old = terms_version(tenant, "1", days_ago=30)
    terms_version(tenant, "2", days_ago=1)
    foreign = terms_version(TenantFactory(), "1")
    assert signed_in.post(url("terms-accept", tenant), {"terms": old.pk}).status_code == 302
    assert signed_in.post(url("terms-accept", tenant), {"terms": foreign.pk}).status_code == 404
    assert signed_in.post(url("terms-accept", tenant), {"terms": "nope"}).status_code == 404
    assert not TermsAcceptance.objects.filter(member=member).exists()


# --- export -----------------------------------------------------------------------------------------------


@pytest.fixture
def coupon_reward(tenant):
    campaign = CampaignFactory(
        tenant=tenant, type="loyalty_reward", discount={"type": "amount", "value": "5.00"}, code_pattern="LR-####-????"
    )
    return RewardFactory(tenant=tenant, name="Five off", type="coupon", campaign=campaign, points_cost=400)


def _export(client, tenant) -> dict:
    response = client.get(url("export", tenant))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    return json.loads(b"".join(response.streaming_content))


def test_the_export_holds_everything_about_the_member_and_nothing_of_others(
    signed_in, tenant, program, member, staff, coupon_reward
):
    other = MemberFactory(tenant=tenant, email="grace@example.com")
    points_adjust(points=77, reason="someone else", staff_user=staff, member=other, program=program)
    purchase = reward_purchase(tenant=tenant, member=member, reward=coupon_reward)
    signed_in.post(url("consent", tenant), {"sms": "on"})
    terms = terms_version(tenant, "1")
    signed_in.post(url("terms-accept", tenant), {"terms": terms.pk})
    data = _export(signed_in, tenant)
    assert data["tenant"] == tenant.slug
    assert data["profile"]["email"] == "ada@example.com" and data["profile"]["consent"]["sms"] is True
    assert [e["points"] for e in data["ledger_entries"]] == [1000, -400]
    assert data["ledger_entries"][0]["reason"] == "welcome"
    assert sum(e["points"] for e in data["ledger_entries"]) == 600
    assert [c["code"] for c in data["codes"]] == [purchase.code.code]
    assert data["reward_purchases"][0]["reward"] == "Five off"
    assert [(c["channel"], c["granted"], c["source"]) for c in data["consent_history"]] == [("sms", True, "cockpit")]
    assert [a["version"] for a in data["terms_acceptances"]] == ["1"]
    for section in ("orders", "order_items", "redemptions", "events", "tiers", "erasure_requests"):
        assert section in data
    assert "grace@example.com" not in json.dumps(data) and "someone else" not in json.dumps(data)


@pytest.mark.postgres
def test_the_export_costs_the_same_queries_whatever_the_history_length(
    tenant, program, staff, coupon_reward, django_assert_max_num_queries
):
    short, long = MemberFactory(tenant=tenant), MemberFactory(tenant=tenant)
    for member, entries in ((short, 5), (long, 300)):
        for n in range(entries):
            points_adjust(points=100, reason=f"entry {n}", staff_user=staff, member=member, program=program)
        reward_purchase(tenant=tenant, member=member, reward=coupon_reward)
    short_client, long_client = Client(), Client()
    sign_in(short_client, short)
    sign_in(long_client, long)
    _export(short_client, tenant)  # warm: the session's first save
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        _export(short_client, tenant)
    with django_assert_max_num_queries(len(queries)):
        data = _export(long_client, tenant)
    assert len(data["ledger_entries"]) == 301  # 300 earned, 1 spent


# --- erasure ----------------------------------------------------------------------------------------------


def test_asking_for_erasure_needs_the_confirmation_and_is_recorded_once(signed_in, tenant, member):
    page = signed_in.get(url("erasure", tenant))
    assert page.status_code == 200 and 'name="confirm"' in page.content.decode()
    refused = signed_in.post(url("erasure", tenant), {})
    assert refused.status_code == 400 and "confirm" in refused.context["form"].errors
    assert not ErasureRequest.objects.filter(member=member).exists()
    with time_machine.travel("2026-06-01 10:00:00+00:00", tick=False):
        assert signed_in.post(url("erasure", tenant), {"confirm": "on"}).status_code == 302
        assert signed_in.post(url("erasure", tenant), {"confirm": "on"}).status_code == 302
    request = ErasureRequest.objects.get(member=member)
    assert request.state == ErasureRequest.State.REQUESTED
    assert request.requested_at.isoformat() == "2026-06-01T10:00:00+00:00"
    assert url("erasure-cancel", tenant) in signed_in.get(url("erasure", tenant)).content.decode()


def test_asking_for_erasure_needs_the_csrf_token(tenant, member):
    client = Client(enforce_csrf_checks=True)
    sign_in(client, member)
    assert client.post(url("erasure", tenant), {"confirm": "on"}).status_code == 403
    assert not ErasureRequest.objects.filter(member=member).exists()


def test_a_member_can_cancel_their_request_before_it_is_carried_out(signed_in, tenant, member):
    signed_in.post(url("erasure", tenant), {"confirm": "on"})
    assert signed_in.get(url("erasure-cancel", tenant)).status_code == 405
    assert signed_in.post(url("erasure-cancel", tenant)).status_code == 302
    assert ErasureRequest.objects.get(member=member).state == ErasureRequest.State.CANCELLED
    signed_in.post(url("erasure", tenant), {"confirm": "on"})  # a new request can follow
    assert ErasureRequest.objects.filter(member=member, state="requested").count() == 1


def test_once_erased_the_session_and_every_link_are_refused(signed_in, tenant, member, staff):
    link = link_path(member)
    signed_in.post(url("erasure", tenant), {"confirm": "on"})
    member_erase(member=member, staff_user=staff)
    assert signed_in.get(url("personal-data", tenant)).status_code == 403
    assert SESSION_KEY not in signed_in.session
    fresh = Client()
    assert fresh.get(link).status_code == 403
    assert SESSION_KEY not in fresh.session
    assert Member.objects.get(pk=member.pk).status == Member.Status.ERASED


def test_the_birthday_field_holds_an_iso_date_in_every_language(signed_in, tenant, member):
    from django.utils import translation

    Member.objects.filter(pk=member.pk).update(birth_date=dt.date(1815, 12, 10))
    with translation.override("de"):
        page = signed_in.get(url("personal-data", tenant)).content.decode()
    assert 'type="date"' in page and 'value="1815-12-10"' in page
