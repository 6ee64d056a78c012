"""Staff sign-in through the real admin: lockout after N failures and unlock (django-axes), the second factor
required of Admins when OTP_REQUIRED_FOR_ADMINS is on (django-otp), secure HTTP-only cookies without DEBUG."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "a-long-right-password-7"


def staff_user(role="Admin", **fields):
    user = UserFactory(**fields)
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


def token(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


@override_settings(AXES_FAILURE_LIMIT=3)
def test_sign_in_locks_after_the_limit_and_an_admin_unlocks_it(client):
    user = staff_user(username="erin")
    for _ in range(3):
        response = client.post(LOGIN, {"username": "erin", "password": "wrong"})
    assert AccessFailureLog.objects.filter(username="erin").count() == 3
    locked = client.post(LOGIN, {"username": "erin", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode() and "3 failed attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # An Admin unlocks it in axes' own admin: deleting the access attempt.
    admin = UserFactory(is_superuser=True)
    client.force_login(admin)
    attempts = client.get("/admin/axes/accessattempt/")
    assert attempts.status_code == 200 and "erin" in attempts.content.decode()
    attempt = AccessAttempt.objects.get(username="erin")
    response = client.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )
    assert response.status_code == 302 and not AccessAttempt.objects.exists()
    client.logout()
    response = client.post(LOGIN, {"username": "erin", "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


def test_below_the_limit_a_right_password_signs_in(client):
    staff_user(username="fred")
    assert client.post(LOGIN, {"username": "fred", "password": "wrong"}).status_code == 200
    assert client.post(LOGIN, {"username": "fred", "password": PASSWORD}).status_code == 302


def test_failure_limit_comes_from_the_environment():
    probe = "import django; from django.conf import settings; django.setup(); print(settings.AXES_FAILURE_LIMIT)"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "s", "HOME": "/tmp"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env={**env, "AXES_FAILURE_LIMIT": "7"}, capture_output=True, text=True
    )
    assert run.stdout.strip() == "7", run.stderr
    default = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True)
    assert default.stdout.strip() == "5", default.stderr


@override_settings(OTP_REQUIRED_FOR_ADMINS=True)
def test_admin_without_a_device_is_sent_to_set_one_up_then_gets_in(client):
    admin = staff_user("Admin")
    client.force_login(admin)
    refused = client.get("/admin/")
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/two-factor/")
    assert client.get("/admin/campaigns/campaign/").status_code == 302
    page = client.get(refused["Location"])
    body = page.content.decode()
    assert (
        page.status_code == 200 and "Your role needs a second factor" in body and "Set up an authenticator app" in body
    )
    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    assert device.config_url in body.replace("&amp;", "&")
    wrong = client.post("/admin/two-factor/", {"token": "000000" if token(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # django-otp slows guessing down: the next try waits a second
    device.throttle_reset()
    done = client.post("/admin/two-factor/", {"token": token(device), "next": "/admin/"})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200


@override_settings(OTP_REQUIRED_FOR_ADMINS=True)
def test_admin_with_a_verified_device_opens_the_admin(client):
    admin = staff_user("Admin")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    client.force_login(admin)
    page = client.get("/admin/two-factor/").content.decode()
    assert "Set up an authenticator app" not in page and "enter the code" in page
    assert client.post("/admin/two-factor/", {"token": token(device)}).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert TOTPDevice.objects.filter(user=admin).count() == 1  # no second device made


@override_settings(OTP_REQUIRED_FOR_ADMINS=True)
def test_other_roles_are_not_asked_for_a_second_factor(client):
    client.force_login(staff_user("Marketer"))
    assert client.get("/admin/").status_code == 200


def test_with_the_setting_off_an_admin_opens_the_admin_without_a_device(client):
    assert settings.OTP_REQUIRED_FOR_ADMINS is False
    client.force_login(staff_user("Admin"))
    assert client.get("/admin/").status_code == 200


def test_api_key_authentication_is_untouched_by_sign_in_security(client, tenant):
    from tests.factories import api_key_for

    _key, raw = api_key_for(tenant)
    with override_settings(OTP_REQUIRED_FOR_ADMINS=True, AXES_FAILURE_LIMIT=1):
        for _ in range(3):
            assert client.get("/api/v1/members/nobody", HTTP_AUTHORIZATION="Api-Key wrong").status_code == 401
        response = client.get("/api/v1/members/nobody", HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 404
    assert not AccessAttempt.objects.exists()


def test_session_and_csrf_cookies_are_secure_and_http_only_without_debug(client):
    assert settings.DEBUG is False  # the test settings run as production does
    staff_user(username="gina")
    client.get(LOGIN)
    response = client.post(LOGIN, {"username": "gina", "password": PASSWORD})
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] is True and session["httponly"] is True
    page = client.get(LOGIN)
    csrf = page.cookies.get(settings.CSRF_COOKIE_NAME) or client.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["secure"] is True
    probe = (
        "import json, django; from django.conf import settings as s; django.setup(); "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE]))"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "s", "HOME": "/tmp"}
    root = Path(__file__).resolve().parents[2]
    off = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env={**env, "DEBUG": "false"}, capture_output=True, text=True
    )
    assert json.loads(off.stdout) == [True, True, True], off.stderr
