"""POST /api/v1/members/{external_id}/cockpit-link: a signed one-time link that signs the member in to the cockpit."""

import datetime as dt
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from members.services import member_set_status
from rewards.cockpit.auth import SESSION_KEY
from tests.api.conftest import assert_error, client_for
from tests.factories import MemberFactory, UserFactory, api_key_for
from tests.rewards.cockpit_helpers import url

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(tenant):
    return MemberFactory(tenant=tenant, external_id="c-42")


def link_of(api, external_id="c-42", body=None):
    return api.post(f"/api/v1/members/{external_id}/cockpit-link", body or {}, format="json")


def test_the_link_signs_the_member_in_once_and_redirects_to_the_cockpit_home(api, tenant, member, settings):
    settings.COCKPIT_LINK_MINUTES = 15
    now = timezone.now().replace(microsecond=0)
    with time_machine.travel(now, tick=False):
        response = link_of(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    assert parse_datetime(body["expires_at"]) == now + dt.timedelta(minutes=15)
    parts = urlsplit(body["url"])
    assert parts.scheme in ("http", "https") and parts.netloc
    assert parts.path.startswith(f"/cockpit/{tenant.slug}/sign-in/")

    browser = Client()
    opened = browser.get(parts.path)
    assert opened.status_code == 302 and opened.url == url("home", tenant)
    assert browser.session[SESSION_KEY] == {"tenant": tenant.pk, "member": member.pk}
    assert "_auth_user_id" not in browser.session
    assert browser.get(url("home", tenant)).status_code == 200
    assert Client().get(parts.path).status_code == 403  # once


def test_the_link_goes_on_to_the_next_cockpit_path(api, tenant, member):
    next_path = url("catalog", tenant)
    path = urlsplit(link_of(api, body={"next": next_path}).json()["url"]).path
    opened = Client().get(path)
    assert opened.status_code == 302 and opened.url == next_path


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x", "/admin/", "/cockpit/other/"])
def test_a_next_outside_the_tenants_cockpit_is_refused(api, member, next_path):
    error = assert_error(link_of(api, body={"next": next_path}), 400, "invalid_next")
    assert "next" in error["details"]


def test_an_expired_link_shows_a_page_that_says_so_and_signs_nobody_in(api, tenant, member):
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        path = urlsplit(link_of(api).json()["url"]).path
    browser = Client()
    with time_machine.travel(now + dt.timedelta(minutes=16), tick=False):
        response = browser.get(path)
    assert response.status_code == 403 and "expired" in response.content.decode()
    assert SESSION_KEY not in browser.session


def test_an_altered_link_is_403(api, tenant, member):
    path = urlsplit(link_of(api).json()["url"]).path
    browser = Client()
    assert browser.get(path[:-3] + "xyz").status_code == 403
    assert SESSION_KEY not in browser.session


def test_another_tenants_member_is_404(other_api, member):
    assert_error(link_of(other_api), 404, "member_not_found")


def test_the_read_scope_is_needed(tenant, member):
    assert link_of(client_for(api_key_for(tenant, scopes=["read"])[1])).status_code == 201
    assert_error(link_of(client_for(api_key_for(tenant, scopes=["earn"])[1])), 403, "insufficient_scope")


def test_a_suspended_member_gets_no_link(api, member):
    member_set_status(member=member, suspended=True, reason="fraud check", staff_user=UserFactory())
    assert_error(link_of(api), 422, "member_suspended")


def test_a_retry_with_the_same_idempotency_key_answers_the_same_link(api, member):
    first = api.post("/api/v1/members/c-42/cockpit-link", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/v1/members/c-42/cockpit-link", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert link_of(api).json()["url"] != first.json()["url"]
