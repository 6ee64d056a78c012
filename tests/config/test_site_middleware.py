"""The staff site's middleware passes API requests through (config.middleware); pages keep all of it."""

import pytest

from tests.api.conftest import client_for
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def test_an_api_answer_carries_no_page_headers_and_touches_no_session(tenant, client):
    response = client_for(api_key_for(tenant)[1]).get("/api/v1/tenant")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response
    assert not response.cookies  # no session, no CSRF cookie
    assert response["X-Frame-Options"] == "DENY" and response["Request-Id"]


def test_the_admin_and_the_api_docs_page_keep_the_site_middleware(client):
    login = client.get("/admin/login/")
    assert login.status_code == 200 and "Content-Security-Policy" in login
    assert login.wsgi_request.user.is_anonymous  # the auth middleware ran
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "Content-Security-Policy" in docs
