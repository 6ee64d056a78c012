"""The demo tenant behind `make demo`: deterministic, and safe to load any number of times.

Everything goes through the same services the admin and the API use, so the demo also shows that a
whole program can be set up from the public surface. Passwords and the demo API key are renewed on each
load (only a hash of a key is ever stored, so an old one cannot be shown again).
"""

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm

from members.admin_tenancy import ACCESS_TENANT
from members.models import Tenant
from members.services import tenant_create

DEMO_TENANT = {"slug": "demo", "name": "Demo Outfitters", "currency": "EUR", "time_zone": "Europe/Berlin"}
ROLE_USERS = {
    "admin": "Admin",
    "marketer": "Marketer",
    "junior": "Junior marketer",
    "support": "Support agent",
    "analyst": "Analyst",
}


@dataclass
class DemoLogins:
    tenant: Tenant
    passwords: dict[str, str] = field(default_factory=dict)
    api_key: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _ensure_staff(tenant: Tenant) -> dict[str, str]:
    User = get_user_model()
    passwords = {}
    for username, role in ROLE_USERS.items():
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.example", "is_staff": True}
            )
            user.is_staff = True
            user.is_superuser = username == "admin"
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            if role != "Admin":
                assign_perm(ACCESS_TENANT, user, tenant)
        passwords[username] = password
    return passwords


def load_demo() -> DemoLogins:
    tenant, _ = tenant_create(**DEMO_TENANT)
    logins = DemoLogins(tenant=tenant)
    logins.passwords = _ensure_staff(tenant)
    return logins
