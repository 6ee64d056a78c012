"""Production settings: HTTPS redirect, HSTS, the proxy's header and the Content-Security-Policy.

The policy is checked against the pages it must not break: the admin (django-celery-beat's and
django-import-export's pages included), Swagger UI from drf-spectacular-sidecar and the static files
whitenoise serves. Every script a page runs is a file from this origin, or inline with the request's
nonce; every inline event handler is allowed by its hash; every asset is on this origin.
"""

import base64
import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The README's production configuration (plus a host name and a long random secret).
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-like-" + "7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e2b4d6f8a0c1e3f5b7d9a",
    "ALLOWED_HOSTS": "loyalty.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto,https",
}


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'redirect': settings.SECURE_SSL_REDIRECT, 'hsts': settings.SECURE_HSTS_SECONDS, "
    "'subdomains': settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload': settings.SECURE_HSTS_PRELOAD, "
    "'proxy': getattr(settings, 'SECURE_PROXY_SSL_HEADER', None), "
    "'csp': 'CONTENT_SECURITY_POLICY' in dir(settings), "
    "'csp_report_only': 'CONTENT_SECURITY_POLICY_REPORT_ONLY' in dir(settings)}))"
)


def test_check_deploy_is_clean_in_the_documented_production_configuration():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_https_settings_come_from_the_environment():
    result = _run(["-c", PROBE], PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "redirect": True,
        "hsts": 31536000,
        "subdomains": True,
        "preload": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "csp": True,
        "csp_report_only": False,
    }
    defaults = json.loads(_run(["-c", PROBE], {"SECRET_KEY": "s"}).stdout)
    assert defaults["redirect"] is False and defaults["hsts"] == 0 and defaults["proxy"] is None
    report_only = json.loads(_run(["-c", PROBE], {"SECRET_KEY": "s", "CSP_REPORT_ONLY": "true"}).stdout)
    assert report_only["csp"] is False and report_only["csp_report_only"] is True


def test_a_malformed_proxy_header_refuses_to_start():
    result = _run(["-c", PROBE], {"SECRET_KEY": "s", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})
    assert result.returncode != 0 and "SECURE_PROXY_SSL_HEADER" in result.stderr


# --- behaviour, in process ------------------------------------------------------------------------------


@pytest.fixture
def https_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_but_healthz_is_not(client, https_settings):
    response = client.get("/admin/login/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/admin/login/"
    assert client.get("/api/v1/tenant").status_code == 301
    assert client.get("/healthz").status_code == 200  # load balancers probe over http


@pytest.mark.django_db
def test_behind_the_proxy_https_is_served_with_hsts(client, https_settings):
    response = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline_scripts: list[dict] = []
        self.urls: list[str] = []
        self.handlers: list[str] = []
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.handlers += [value for name, value in attrs.items() if name.startswith("on") and value]
        if tag == "script":
            if attrs.get("src"):
                self.urls.append(attrs["src"])
            elif attrs.get("type", "text/javascript") not in ("application/json",):
                self._in_script = attrs
                self.inline_scripts.append(attrs)
        elif tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        elif tag == "img" and attrs.get("src"):
            self.urls.append(attrs["src"])


def _assert_page_runs_under_the_policy(client, response) -> _Assets:
    assert response.status_code == 200, response
    policy = _policy(response)
    scripts = policy["script-src"]
    assert "'self'" in scripts and "'unsafe-inline'" not in scripts and "*" not in scripts
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    page = _Assets()
    page.feed(response.content.decode())
    for attrs in page.inline_scripts:  # an inline script runs only with this response's nonce
        assert attrs.get("nonce") and f"'nonce-{attrs['nonce']}'" in scripts, attrs
    for handler in page.handlers:  # an inline handler runs only if its hash is allowed
        digest = base64.b64encode(hashlib.sha256(handler.encode()).digest()).decode()
        assert "'unsafe-hashes'" in scripts and f"'sha256-{digest}'" in scripts, handler
    for url in page.urls:  # every asset from this origin, and there
        assert url.startswith("/") and not url.startswith("//"), url
        if "/static/" in url:
            asset = client.get(url)
            assert asset.status_code == 200, url
            # Read it through: the test client then closes it as a WSGI server would (a bare close() here
            # would fire request_finished and close the test's database connection).
            assert b"".join(asset.streaming_content if asset.streaming else [asset.content]), url
    return page


@pytest.fixture
def static_from_finders(settings):
    """whitenoise serving the apps' static files as `collectstatic` would put them in STATIC_ROOT."""
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True


@pytest.mark.django_db
def test_the_admin_pages_run_under_the_policy(client, admin_client, tenant, static_from_finders):
    from tests.factories import CampaignFactory

    _assert_page_runs_under_the_policy(client, client.get("/admin/login/"))
    campaign = CampaignFactory(tenant=tenant)
    for url in [
        "/admin/",
        "/admin/campaigns/campaign/",
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        "/admin/members/member/add/",
    ]:
        _assert_page_runs_under_the_policy(admin_client, admin_client.get(url))


@pytest.mark.django_db
def test_the_beat_schedule_form_carries_the_nonce_on_its_inline_script(admin_client, static_from_finders):
    response = admin_client.get("/admin/django_celery_beat/periodictask/add/")
    page = _assert_page_runs_under_the_policy(admin_client, response)
    assert len(page.inline_scripts) == 1 and page.inline_scripts[0]["id"] == "periodic-task-overrides"


@pytest.mark.django_db
def test_the_export_page_runs_under_the_policy(admin_client, tenant, static_from_finders):
    response = admin_client.get("/admin/campaigns/code/export/")
    page = _assert_page_runs_under_the_policy(admin_client, response)
    assert page.handlers == ["onSelectToggleChange(event)"]


@pytest.mark.django_db
def test_swagger_ui_runs_under_the_policy(client, static_from_finders):
    response = client.get("/api/v1/docs/")
    page = _assert_page_runs_under_the_policy(client, response)
    assert page.inline_scripts == []
    start = [url for url in page.urls if "script" in url and "/static/" not in url]
    assert len(start) == 1  # its start-up script is a file from here (SpectacularSwaggerSplitView)
    script = client.get(start[0])
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert re.search(r"SwaggerUIBundle\(", script.content.decode())
    policy = _policy(response)
    assert "'self'" in policy["connect-src"] and "data:" in policy["img-src"]  # the schema, the icons
