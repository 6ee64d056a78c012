"""One-time sign-in links to the member cockpit, by email or handed over by a touchpoint (the API).

A link is a signed value (Django's signing, salted, timestamped) naming the tenant, the member, a random nonce
and where to go next: nothing is stored when a link is made, it expires after COCKPIT_LINK_MINUTES, and using it
writes a `CockpitLinkUse` row whose unique nonce makes a second use fail (the constraint is the backstop).
"""

import dataclasses
import datetime as dt
import secrets

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import ApplicationError
from members.models import CockpitLinkUse, Member, Tenant

SALT = "members.cockpit_link"


@dataclasses.dataclass(frozen=True)
class CockpitLink:
    token: str
    expires_at: dt.datetime


def _lifetime() -> dt.timedelta:
    return dt.timedelta(minutes=settings.COCKPIT_LINK_MINUTES)


def cockpit_link_make(*, member: Member, next_path: str = "") -> CockpitLink:
    """A signed sign-in token for `member`, valid COCKPIT_LINK_MINUTES from now."""
    value = {"t": member.tenant_id, "m": member.pk, "n": secrets.token_hex(16), "x": next_path}
    return CockpitLink(signing.dumps(value, salt=SALT), timezone.now() + _lifetime())


def _refused(code: str, message: str) -> ApplicationError:
    return ApplicationError(code, message, status=403)


def cockpit_link_use(*, tenant: Tenant, token: str) -> tuple[Member, str]:
    """The member a link signs in and the path it goes on to; `link_expired`, `link_invalid`, `link_used` or
    `member_inactive` (403) otherwise. Each link works once."""
    try:
        value = signing.loads(token, salt=SALT, max_age=_lifetime())
    except signing.SignatureExpired as exc:
        raise _refused("link_expired", "This sign-in link has expired.") from exc
    except signing.BadSignature as exc:
        raise _refused("link_invalid", "This sign-in link is not valid.") from exc
    if not isinstance(value, dict) or value.get("t") != tenant.pk or not value.get("n"):
        raise _refused("link_invalid", "This sign-in link is not valid.")
    member = Member.objects.for_tenant(tenant).filter(pk=value.get("m")).first()
    if member is None:
        raise _refused("link_invalid", "This sign-in link is not valid.")
    if member.status != Member.Status.ACTIVE:
        raise _refused("member_inactive", "This membership cannot use the cockpit.")
    try:
        with transaction.atomic(durable=True):
            CockpitLinkUse.objects.create(tenant=tenant, member=member, nonce=value["n"], used_at=timezone.now())
    except IntegrityError as exc:
        raise _refused("link_used", "This sign-in link was already used.") from exc
    return member, str(value.get("x") or "")


def cockpit_sign_in_member(*, tenant: Tenant, email: str) -> Member | None:
    """The active member of `tenant` a sign-in request by email is for (the oldest if several share it)."""
    email = email.strip()
    if not email:
        return None
    return (
        Member.objects.for_tenant(tenant)
        .filter(email__iexact=email, status=Member.Status.ACTIVE)
        .order_by("pk")
        .first()
    )
