import datetime as dt
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date
from django_countries import countries

from common.errors import ApplicationError
from common.events import publish
from members.models import Member, Segment, SegmentMember, Tenant
from members.selectors import validate_criteria


def tenant_create(
    *, slug: str, name: str, currency: str, time_zone: str = "UTC", locale: str = "en"
) -> tuple[Tenant, bool]:
    """Create a tenant, or return the existing one with that slug unchanged (idempotent)."""
    existing = Tenant.objects.filter(slug=slug).first()
    if existing:
        return existing, False
    tenant = Tenant(slug=slug, name=name, currency=currency.upper(), time_zone=time_zone, locale=locale)
    tenant.full_clean()
    with transaction.atomic():
        tenant._change_reason = "created"
        tenant.save()
    return tenant, True


def tenant_set_frozen(*, tenant: Tenant, frozen: bool, reason: str = "") -> Tenant:
    """The tenant-wide kill switch: freezes (or thaws) every redemption and earning at once."""
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        tenant.frozen = frozen
        tenant.frozen_reason = reason if frozen else ""
        tenant._change_reason = f"{'frozen' if frozen else 'unfrozen'}: {reason}".strip(": ")
        tenant.save(update_fields=["frozen", "frozen_reason"])
    return tenant


# --- members ------------------------------------------------------------------------------------

MEMBER_FIELDS = ("email", "name", "phone", "country", "city", "birth_date", "attributes", "marketing_consent")
REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till


def _referral_code(member: Member) -> str:
    prefix = "".join(c for c in (member.name or member.external_id).upper() if c.isascii() and c.isalnum())[:4]
    return f"{prefix or 'M'}-{''.join(secrets.choice(REFERRAL_ALPHABET) for _ in range(4))}"


def member_fields_errors(fields: dict[str, Any]) -> dict[str, str]:
    """What `member_upsert` would refuse in `fields` ({field: message}), for forms that check before saving."""
    return _clean_member_fields(fields)[1]


def _clean_member_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    unknown = set(fields) - set(MEMBER_FIELDS) - {"referred_by"}
    for name in sorted(unknown):
        errors[name] = "unknown field"
    clean: dict[str, Any] = {}
    for name in MEMBER_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name in ("email", "country") and not isinstance(value or "", str):
            errors[name] = "a text"
            continue
        if name == "email":
            value = (value or "").strip()
            try:
                if value:
                    validate_email(value)
            except ValidationError:
                errors[name] = "not a valid email address"
        elif name in ("name", "phone", "city"):
            limit = {"name": 200, "phone": 40, "city": 100}[name]
            if value is not None and not isinstance(value, str) or (value and len(value) > limit):
                errors[name] = f"a text of at most {limit} characters"
                continue
            value = (value or "").strip()
        elif name == "country":
            value = (value or "").strip().upper()
            if value and value not in countries:
                errors[name] = "an ISO 3166 alpha-2 code such as GB"
        elif name == "birth_date":
            if isinstance(value, str):
                value = parse_date(value) if value else None
                if value is None and fields[name]:
                    errors[name] = "a date such as 1990-04-30"
            elif value is not None and not isinstance(value, dt.date):
                errors[name] = "a date such as 1990-04-30"
        elif name == "attributes":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                errors[name] = "an object"
        elif name == "marketing_consent" and not isinstance(value, bool):
            errors[name] = "true or false"
        clean[name] = value
    return clean, errors


def member_upsert(*, tenant: Tenant, external_id: str, **fields: Any) -> tuple[Member, bool]:
    """Create or update a member by external id; returns (member, created). Emits `member.created`.

    Email is required on create. `referred_by` names the referrer by external id or referral code (set once).
    The consent time is stamped whenever `marketing_consent` changes. The referral code is generated unique
    per tenant. Raises ApplicationError("invalid_member", details={field: message}) for bad input.
    """
    if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 100:
        raise ApplicationError(
            "invalid_member", "The member is not valid.", {"external_id": "required, at most 100 chars"}, status=400
        )
    clean, errors = _clean_member_fields(fields)
    if errors:
        raise ApplicationError("invalid_member", "The member is not valid.", errors, status=400)
    for attempt in range(3):
        try:
            return _member_upsert(
                tenant=tenant, external_id=external_id, clean=clean, referred_by=fields.get("referred_by")
            )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _member_upsert(*, tenant: Tenant, external_id: str, clean: dict[str, Any], referred_by: Any) -> tuple[Member, bool]:
    now = timezone.now()
    with transaction.atomic(durable=True):
        member = Member.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
        created = member is None
        if created:
            if not clean.get("email"):
                raise ApplicationError(
                    "invalid_member", "An email is required for a new member.", {"email": "required"}, status=400
                )
            member = Member(tenant=tenant, external_id=external_id)
        consent_before = member.marketing_consent
        for name, value in clean.items():
            setattr(member, name, value)
        if "marketing_consent" in clean and (created or clean["marketing_consent"] != consent_before):
            member.marketing_consent_changed_at = now
        if referred_by not in (None, "") and member.referred_by_id is None:
            if not isinstance(referred_by, str):
                raise ApplicationError("invalid_member", "Unknown referrer.", {"referred_by": "unknown"}, status=400)
            referrer = (
                Member.objects.for_tenant(tenant)
                .filter(Q(external_id=referred_by) | Q(referral_code=referred_by.upper()))
                .exclude(external_id=external_id)
                .first()
            )
            if referrer is None:
                raise ApplicationError(
                    "invalid_member", "Unknown referrer.", {"referred_by": "no member with this id or code"}, status=400
                )
            member.referred_by = referrer
        member._change_reason = "created" if created else "updated"
        if created:
            for _ in range(10):
                member.referral_code = _referral_code(member)
                if not Member.objects.for_tenant(tenant).filter(referral_code=member.referral_code).exists():
                    break
        member.save()
        if created:
            publish(
                tenant,
                "member.created",
                {
                    "external_id": member.external_id,
                    "email": member.email,
                    "referral_code": member.referral_code,
                    "referred_by": member.referred_by.external_id if member.referred_by else None,
                    "created_at": member.created_at.isoformat(),
                },
            )
        return member, created


# --- segments -----------------------------------------------------------------------------------


def segment_declare(
    *, tenant: Tenant, code: str, name: str, criteria: dict | None = None, kind: str = "dynamic"
) -> Segment:
    """Create or update a segment; dynamic criteria are checked (see `members.selectors.members_matching`)."""

    if kind not in Segment.Kind.values:
        raise ApplicationError("invalid_segment", "Unknown segment kind.", {"kind": "dynamic or static"}, status=400)
    criteria = validate_criteria(criteria or {}) if kind == Segment.Kind.DYNAMIC else {}
    with transaction.atomic(durable=True):
        segment, _ = Segment.objects.select_for_update().get_or_create(
            tenant=tenant, code=code, defaults={"name": name, "kind": kind, "criteria": criteria}
        )
        segment.name, segment.kind, segment.criteria = name, kind, criteria
        segment._change_reason = "declared"
        segment.save()
    return segment


def segment_upload_static(*, segment: Segment, external_ids: list[str], replace: bool = True) -> dict[str, Any]:
    """Set (or extend) a static segment's members from a list of external ids; unknown ids are reported."""
    if segment.kind != Segment.Kind.STATIC:
        raise ApplicationError("segment_not_static", "Only a static segment takes an uploaded list.")
    wanted = {e.strip() for e in external_ids if e and e.strip()}
    with transaction.atomic(durable=True):
        found = dict(
            Member.objects.for_tenant(segment.tenant_id).filter(external_id__in=wanted).values_list("external_id", "pk")
        )
        if replace:
            SegmentMember.objects.filter(segment=segment).exclude(member_id__in=found.values()).delete()
        SegmentMember.objects.bulk_create(
            [SegmentMember(segment=segment, member_id=pk) for pk in found.values()], ignore_conflicts=True
        )
    return {"added": len(found), "unknown": sorted(wanted - set(found))}
