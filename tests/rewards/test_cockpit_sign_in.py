"""Signing in to the member cockpit: one-time links by email, expiry, tampering, rate limits, suspension, and the
cockpit's session kept apart from the admin's."""

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from members.models import CockpitLinkUse, Member
from members.services import member_set_status
from rewards.cockpit.auth import SESSION_KEY
from tests.factories import MemberFactory, TenantFactory, UserFactory
from tests.rewards.cockpit_helpers import (
    empty_cache,  # noqa: F401 (autouse fixture)
    link_path,
    sign_in,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(tenant):
    return MemberFactory(tenant=tenant, email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def ask_for_link(django_capture_on_commit_callbacks):
    """Posts the sign-in form; the email goes after commit, as in production."""

    def ask(client, tenant, email, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url("sign-in", tenant), {"email": email}, **extra)

    return ask


def mailed_link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def test_sign_in_page_answers_the_same_for_a_known_and_an_unknown_email(
    client, tenant, member, mailoutbox, ask_for_link
):
    known = ask_for_link(client, tenant, "ADA@example.com")
    unknown = ask_for_link(client, tenant, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200

    def normalise(response, email):  # the email typed, and the masked CSRF token of the language switcher
        page = response.content.decode().replace(email, "EMAIL")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "TOKEN", page)

    assert normalise(known, "ADA@example.com") == normalise(unknown, "nobody@example.com")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@example.com"]
    assert f"/cockpit/{tenant.slug}/sign-in/" in mailoutbox[0].body


def test_no_mail_for_a_suspended_member_nor_for_a_member_of_another_tenant(
    client, tenant, member, mailoutbox, ask_for_link
):
    MemberFactory(tenant=TenantFactory(), email="grace@example.com")
    member_set_status(member=member, suspended=True, reason="fraud check", staff_user=UserFactory())
    assert ask_for_link(client, tenant, "ada@example.com").status_code == 200
    assert ask_for_link(client, tenant, "grace@example.com").status_code == 200
    assert mailoutbox == []


def test_the_mailed_link_signs_the_member_in_once(client, tenant, member, mailoutbox, ask_for_link):
    ask_for_link(client, tenant, "ada@example.com")
    link = mailed_link(mailoutbox[0])
    response = client.get(link)
    assert response.status_code == 302 and response.url == url("home", tenant)
    assert client.session[SESSION_KEY] == {"tenant": tenant.pk, "member": member.pk}
    home = client.get(url("home", tenant))
    assert home.status_code == 200 and "Ada" in home.content.decode()

    other_browser = type(client)()
    again = other_browser.get(link)
    assert again.status_code == 403
    assert "already used" in again.content.decode()
    assert SESSION_KEY not in other_browser.session
    assert CockpitLinkUse.objects.filter(member=member).count() == 1


def test_an_expired_link_is_refused_and_signs_nobody_in(client, tenant, member, settings):
    settings.COCKPIT_LINK_MINUTES = 15
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        path = link_path(member)
    with time_machine.travel(start + dt.timedelta(minutes=14), tick=False):
        still_valid = link_path(member)
    with time_machine.travel(start + dt.timedelta(minutes=15, seconds=1), tick=False):
        response = client.get(path)
        assert response.status_code == 403
        assert "expired" in response.content.decode()
        assert SESSION_KEY not in client.session
        assert client.get(still_valid).status_code == 302
    assert CockpitLinkUse.objects.filter(member=member).count() == 1  # the expired link left no use behind


@pytest.mark.parametrize("tamper", ["flip_character", "other_tenant", "garbage"])
def test_an_altered_link_is_refused_and_signs_nobody_in(client, tenant, member, tamper):
    path = link_path(member)
    if tamper == "flip_character":
        token = path.rsplit("/", 1)[1]
        position = len(token) // 3  # inside the signed value
        flipped = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        path = path.replace(token, flipped)
    elif tamper == "other_tenant":
        path = path.replace(f"/cockpit/{tenant.slug}/", f"/cockpit/{TenantFactory().slug}/")
    else:
        path = url("link", tenant, token="not-a-token")
    response = client.get(path)
    assert response.status_code == 403
    assert SESSION_KEY not in client.session
    assert client.get(url("home", tenant)).status_code == 302
    assert not CockpitLinkUse.objects.exists()


def test_sign_in_requests_are_rate_limited_per_email(client, tenant, member, mailoutbox, settings, ask_for_link):
    settings.COCKPIT_SIGN_IN_PER_EMAIL = 2
    assert ask_for_link(client, tenant, "ada@example.com").status_code == 200
    assert ask_for_link(client, tenant, "Ada@Example.com").status_code == 200
    throttled = ask_for_link(client, tenant, "ada@example.com")
    assert throttled.status_code == 429
    assert len(mailoutbox) == 2
    # The limit is the same for an unknown email: it says nothing about accounts.
    for _ in range(2):
        ask_for_link(client, tenant, "nobody@example.com")
    assert ask_for_link(client, tenant, "nobody@example.com").status_code == 429


def test_sign_in_requests_are_rate_limited_per_client_address(
    client, tenant, member, mailoutbox, settings, ask_for_link
):
    settings.COCKPIT_SIGN_IN_PER_ADDRESS = 3
    for n in range(3):
        assert ask_for_link(client, tenant, f"someone{n}@example.com", REMOTE_ADDR="10.0.0.1").status_code == 200
    assert ask_for_link(client, tenant, "ada@example.com", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert mailoutbox == []
    assert ask_for_link(client, tenant, "ada@example.com", REMOTE_ADDR="10.0.0.2").status_code == 200
    assert len(mailoutbox) == 1


def test_a_suspended_member_cannot_sign_in(client, tenant, member):
    path = link_path(member)
    member_set_status(member=member, suspended=True, reason="fraud check", staff_user=UserFactory())
    response = client.get(path)
    assert response.status_code == 403
    assert SESSION_KEY not in client.session


def test_an_erased_member_cannot_sign_in(client, tenant, member):
    path = link_path(member)
    Member.objects.filter(pk=member.pk).update(status=Member.Status.ERASED)
    assert client.get(path).status_code == 403
    assert SESSION_KEY not in client.session


def test_the_session_of_a_member_suspended_since_is_refused(client, tenant, member):
    sign_in(client, member)
    assert client.get(url("home", tenant)).status_code == 200
    member_set_status(member=member, suspended=True, reason="fraud check", staff_user=UserFactory())
    response = client.get(url("home", tenant))
    assert response.status_code == 403
    assert SESSION_KEY not in client.session
    assert client.get(url("ledger", tenant)).status_code == 302  # signed out: back to the sign-in page


def test_signing_out_ends_the_cockpit_session(client, tenant, member):
    sign_in(client, member)
    assert client.post(url("sign-out", tenant)).status_code == 200
    response = client.get(url("home", tenant))
    assert response.status_code == 302 and response.url == url("sign-in", tenant)


def test_a_cockpit_sign_in_creates_no_admin_session(client, tenant, member):
    sign_in(client, member)
    assert "_auth_user_id" not in client.session
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_an_admin_session_is_no_cockpit_session(client, tenant, member):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/admin/").status_code == 200
    response = client.get(url("home", tenant))
    assert response.status_code == 302 and response.url == url("sign-in", tenant)
    # And signing out of the cockpit leaves the staff user signed in to the admin.
    sign_in(client, member)
    client.post(url("sign-out", tenant))
    assert client.get("/admin/").status_code == 200


def test_a_cockpit_session_of_one_tenant_opens_no_other_tenants_cockpit(client, tenant, member):
    sign_in(client, member)
    other = TenantFactory()
    response = client.get(url("home", other))
    assert response.status_code == 302 and response.url == url("sign-in", other)


def test_an_unknown_tenant_is_404(client, db):
    assert client.get("/cockpit/no-such-tenant/sign-in").status_code == 404
