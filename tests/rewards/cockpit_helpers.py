"""Shared set-up of the cockpit tests: a member with points, and signing them in through a real link."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from members.cockpit_links import cockpit_link_make


def link_path(member, next_path: str = "") -> str:
    token = cockpit_link_make(member=member, next_path=next_path).token
    return reverse("cockpit:link", kwargs={"tenant_slug": member.tenant.slug, "token": token})


def sign_in(client, member):
    response = client.get(link_path(member))
    assert response.status_code == 302, response.content
    return response


def url(name: str, tenant, **kwargs) -> str:
    return reverse(f"cockpit:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture(autouse=True)
def empty_cache():
    """The sign-in rate limits count in the cache: each test starts from none (autouse where imported)."""
    cache.clear()
    yield
    cache.clear()
