"""The program's terms (versions, the current one, acceptances, the admin) and the pruning of spent tokens."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from common.errors import ApplicationError
from members.form_once import new_token, token_claim
from members.models import CockpitLinkUse, FormSubmission, TermsAcceptance, TermsVersion
from members.services import terms_accept, terms_current
from members.tasks import prune_used_tokens
from tests.factories import MemberFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def version(tenant, number, published_at, text="..."):
    return TermsVersion.objects.create(tenant=tenant, version=number, text=text, published_at=published_at)


def test_the_current_terms_are_the_latest_published_version_of_the_tenant(tenant):
    now = timezone.now()
    assert terms_current(tenant) is None
    first = version(tenant, "1", now - dt.timedelta(days=10))
    second = version(tenant, "2", now - dt.timedelta(days=1))
    version(tenant, "3", None)  # a draft
    version(tenant, "4", now + dt.timedelta(days=1))  # published tomorrow
    version(TenantFactory(), "9", now)  # another tenant's
    assert terms_current(tenant) == second
    assert terms_current(tenant, now=now - dt.timedelta(days=5)) == first


def test_only_the_current_version_is_accepted_and_only_once(tenant):
    member = MemberFactory(tenant=tenant)
    old = version(tenant, "1", timezone.now() - dt.timedelta(days=10))
    current = version(tenant, "2", timezone.now() - dt.timedelta(days=1))
    with pytest.raises(ApplicationError) as refused:
        terms_accept(member=member, terms=old)
    assert refused.value.code == "terms_not_current"
    moment = timezone.now().replace(microsecond=0)
    with time_machine.travel(moment, tick=False):
        acceptance, created = terms_accept(member=member, terms=current)
    assert created and acceptance.accepted_at == moment
    again, created = terms_accept(member=member, terms=current)
    assert not created and again.pk == acceptance.pk
    assert TermsAcceptance.objects.filter(member=member).count() == 1


def test_the_admin_adds_versions_and_keeps_published_ones_unchanged(client, tenant):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    add = reverse("admin:members_termsversion_add")
    published = "2026-01-01 00:00:00"
    response = client.post(
        add,
        {
            "tenant": tenant.pk,
            "version": "1",
            "text": "First text.",
            "published_at_0": "2026-01-01",
            "published_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    first = TermsVersion.objects.get(tenant=tenant, version="1")
    assert first.published_at.isoformat().startswith(published[:10])
    change = reverse("admin:members_termsversion_change", args=[first.pk])
    client.post(
        change, {"tenant": tenant.pk, "version": "1", "text": "Changed!", "published_at_0": "", "published_at_1": ""}
    )
    first.refresh_from_db()
    assert first.text == "First text."  # read-only once published
    assert (
        client.post(reverse("admin:members_termsversion_delete", args=[first.pk]), {"post": "yes"}).status_code == 403
    )
    client.post(
        add,
        {
            "tenant": tenant.pk,
            "version": "2",
            "text": "Second text.",
            "published_at_0": "2026-02-01",
            "published_at_1": "00:00:00",
        },
    )
    assert list(TermsVersion.objects.filter(tenant=tenant).order_by("version").values_list("text", flat=True)) == [
        "First text.",
        "Second text.",
    ]
    assert terms_current(tenant).version == "2"


def test_the_member_admin_page_shows_the_accepted_versions(client, tenant):
    member = MemberFactory(tenant=tenant)
    current = version(tenant, "2026-05", timezone.now() - dt.timedelta(days=1))
    terms_accept(member=member, terms=current)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:members_member_change", args=[member.pk])).content.decode()
    assert "version 2026-05" in page


# --- spent tokens -----------------------------------------------------------------------------------------


def test_pruning_forgets_link_uses_past_the_link_lifetime_and_form_tokens_past_a_day(tenant, settings):
    settings.COCKPIT_LINK_MINUTES = 15
    member = MemberFactory(tenant=tenant)
    now = timezone.now()
    CockpitLinkUse.objects.create(tenant=tenant, member=member, nonce="old", used_at=now - dt.timedelta(minutes=16))
    CockpitLinkUse.objects.create(tenant=tenant, member=member, nonce="live", used_at=now - dt.timedelta(minutes=14))
    with time_machine.travel(now - dt.timedelta(hours=25), tick=False):
        FormSubmission.objects.create(token="old-token", form="x")
    FormSubmission.objects.create(token="new-token", form="x")
    assert prune_used_tokens() == {"cockpit_links": 1, "form_tokens": 1}
    assert list(CockpitLinkUse.objects.values_list("nonce", flat=True)) == ["live"]
    assert list(FormSubmission.objects.values_list("token", flat=True)) == ["new-token"]
    assert prune_used_tokens() == {"cockpit_links": 0, "form_tokens": 0}


def test_a_form_token_older_than_a_day_or_not_ours_is_refused_so_pruning_its_claim_is_safe():
    with time_machine.travel("2026-06-01 08:00:00+00:00", tick=False):
        token = new_token()
    with time_machine.travel("2026-06-02 08:01:00+00:00", tick=False):
        with pytest.raises(ApplicationError) as expired:
            token_claim(token, user=None, name="test")
    assert expired.value.code == "form_expired"
    with pytest.raises(ApplicationError) as forged:
        token_claim("made-up-token", user=None, name="test")
    assert forged.value.code == "form_expired"
    assert not FormSubmission.objects.exists()
    fresh = new_token()
    token_claim(fresh, user=None, name="test")
    with pytest.raises(ApplicationError) as twice:
        token_claim(fresh, user=None, name="test")
    assert twice.value.code == "already_submitted"
