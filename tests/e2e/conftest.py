"""Browser tests: Playwright for Python driving Debian's chromium (headless) against Django's live server.

Screenshots go to tests/artifacts/ (ignored by git). Django's ORM is called from the test while Playwright's
sync API holds an event loop in the same thread, hence DJANGO_ALLOW_ASYNC_UNSAFE (as the stack notes say).
"""

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory's


def staff(tenant, role):
    """A staff user of `role` with access to `tenant`."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    from tests.factories import UserFactory

    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    return user


def sign_in(browser, live_server, user):
    """A new browser context signed in to the admin as `user`; its page on the admin index."""
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page
