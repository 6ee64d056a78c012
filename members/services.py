import datetime as dt
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_countries import countries

from common.answer import Answer
from common.errors import ApplicationError
from common.events import publish
from common.validation import FieldErrors, field_error
from members.erasure import Erased, erase_copies
from members.form_once import FORM_TOKEN_MAX_AGE
from members.models import (
    CONSENT_CHANNELS,
    CockpitLinkUse,
    ConsentChange,
    CustomEvent,
    ErasureRequest,
    FormSubmission,
    Member,
    Segment,
    SegmentMember,
    Tenant,
    TermsAcceptance,
    TermsVersion,
)
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


def tenant_set_frozen(*, tenant: Tenant, frozen: bool, reason: str = "", answer: Answer | None = None) -> Tenant:
    """The tenant-wide kill switch: freezes (or thaws) every redemption and earning at once.

    `answer(tenant)` is called inside the transaction just before its commit (see `common.answer`)."""
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        tenant.frozen = frozen
        tenant.frozen_reason = reason if frozen else ""
        tenant._change_reason = f"{'frozen' if frozen else 'unfrozen'}: {reason}".strip(": ")
        tenant.save(update_fields=["frozen", "frozen_reason"])
        if answer is not None:
            answer(tenant)
    return tenant


# --- members ------------------------------------------------------------------------------------

MEMBER_FIELDS = ("email", "name", "phone", "country", "city", "birth_date", "attributes", "marketing_consent")
REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till


def _referral_code(member: Member) -> str:
    prefix = "".join(c for c in (member.name or member.external_id).upper() if c.isascii() and c.isalnum())[:4]
    return f"{prefix or 'M'}-{''.join(secrets.choice(REFERRAL_ALPHABET) for _ in range(4))}"


def member_fields_errors(fields: dict[str, Any]) -> dict[str, str]:
    """What `member_upsert` would refuse in `fields` ({field: message}), for forms that check before saving."""
    errors = FieldErrors()
    _clean_member_fields(fields, errors)
    return errors.details


TEXT_LIMITS = {"name": 200, "phone": 40, "city": 100}


def _clean_consent(value: Any, errors: FieldErrors) -> dict[str, bool]:
    consent = errors.mapping(value, "consent", required=True, default={})
    for channel in sorted(set(consent) - set(CONSENT_CHANNELS)):
        errors.add(f"consent.{channel}", f"unknown channel: must be one of {', '.join(CONSENT_CHANNELS)}")
    return {
        channel: errors.boolean(consent[channel], f"consent.{channel}", required=True)
        for channel in CONSENT_CHANNELS
        if channel in consent
    }


def _clean_member_fields(fields: dict[str, Any], errors: FieldErrors) -> dict[str, Any]:
    for name in sorted(set(fields) - set(MEMBER_FIELDS) - {"referred_by", "consent"}):
        errors.add(name, "unknown field")
    clean: dict[str, Any] = {}
    if "consent" in fields:
        clean["consent"] = _clean_consent(fields["consent"], errors)
    for name in MEMBER_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name == "email":
            value = errors.text(value, name, strip=True)
            if value:
                try:
                    validate_email(value)
                except ValidationError:
                    errors.add(name, "must be a valid email address")
        elif name in TEXT_LIMITS:
            value = errors.text(value, name, max_length=TEXT_LIMITS[name], strip=True)
        elif name == "country":
            value = errors.text(value, name, strip=True).upper()
            errors.check(not value or value in countries, name, "must be an ISO 3166 alpha-2 code such as GB")
        elif name == "birth_date":
            value = errors.date(value, name)
        elif name == "attributes":
            value = errors.mapping(value, name, default={})
        elif name == "marketing_consent":
            value = errors.boolean(value, name, required=True)
        clean[name] = value
    return clean


def member_upsert(
    *,
    tenant: Tenant,
    external_id: str,
    answer: Answer | None = None,
    consent_source: str = ConsentChange.Source.API,
    staff_user=None,
    **fields: Any,
) -> tuple[Member, bool]:
    """Create or update a member by external id; returns (member, created). Emits `member.created`.

    Email is required on create. `referred_by` names the referrer by external id or referral code (set once).
    Consent: `marketing_consent` sets every channel, then `consent` ({"email": bool, "sms": .., "push": ..})
    sets the channels it names; each channel that changes is stamped and recorded as a `ConsentChange`
    (with `consent_source` and `staff_user`), and `marketing_consent` then reads true when any channel is.
    The referral code is generated unique
    per tenant. Raises ApplicationError("invalid_member", details={field: message}) for bad input.
    `answer((member, created))` is called inside the transaction just before its commit (see `common.answer`).
    """
    errors = FieldErrors()
    errors.text(external_id, "external_id", max_length=100, required=True, strip=True)
    clean = _clean_member_fields(fields, errors)
    errors.raise_if_any("invalid_member", "The member is not valid.")
    for attempt in range(3):
        try:
            return _member_upsert(
                tenant=tenant,
                external_id=external_id,
                clean=clean,
                referred_by=fields.get("referred_by"),
                answer=answer,
                consent_source=consent_source,
                staff_user=staff_user,
            )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _member_upsert(
    *,
    tenant: Tenant,
    external_id: str,
    clean: dict[str, Any],
    referred_by: Any,
    answer: Answer | None,
    consent_source: str,
    staff_user,
) -> tuple[Member, bool]:
    now = timezone.now()
    with transaction.atomic(durable=True):
        member = Member.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
        if member is not None and member.status == Member.Status.ERASED:
            # Read now, not from the caller's (possibly cached) tenant: this rare answer must follow the setting.
            reusable = Tenant.objects.filter(pk=tenant.pk).values_list("erased_external_id_reusable", flat=True)
            if not reusable.first():
                raise ApplicationError(
                    "member_erased",
                    "This member's data was erased; the tenant does not let a new member take their external id.",
                    {"external_id": external_id},
                    status=409,
                )
            _external_id_free(member)  # the tenant allowed reuse after this member was erased
            member = None
        created = member is None
        if created:
            if not clean.get("email"):
                raise field_error("invalid_member", "An email is required for a new member.", "email", "required")
            member = Member(tenant=tenant, external_id=external_id)
        wanted = dict.fromkeys(CONSENT_CHANNELS, clean["marketing_consent"]) if "marketing_consent" in clean else {}
        wanted.update(clean.get("consent", {}))
        for name, value in clean.items():
            if name not in ("marketing_consent", "consent"):
                setattr(member, name, value)
        changes = _consent_apply(member, wanted, now=now, created=created)
        if referred_by not in (None, "") and member.referred_by_id is None:
            if not isinstance(referred_by, str):
                raise field_error("invalid_member", "Unknown referrer.", "referred_by", "unknown")
            referrer = (
                Member.objects.for_tenant(tenant)
                .filter(Q(external_id=referred_by) | Q(referral_code=referred_by.upper()))
                .exclude(external_id=external_id)
                .first()
            )
            if referrer is None:
                raise field_error(
                    "invalid_member", "Unknown referrer.", "referred_by", "no member with this id or code"
                )
            member.referred_by = referrer
        member._change_reason = "created" if created else "updated"
        if created:
            for _ in range(10):
                member.referral_code = _referral_code(member)
                if not Member.objects.for_tenant(tenant).filter(referral_code=member.referral_code).exists():
                    break
        member.save()
        _consent_record(member, changes, source=consent_source, staff_user=staff_user)
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
        result = (member, created)
        if answer is not None:
            answer(result)
        return result


def _consent_apply(member: Member, wanted: dict[str, bool], *, now, created: bool = False) -> list[tuple[str, bool]]:
    """Set the channels of `wanted` on `member` (not saved): -> the (channel, granted) that changed.

    A new member's stated consent is recorded even when it is the default (no), as proof of what was said.
    """
    changes = []
    for channel, granted in wanted.items():
        if created or getattr(member, f"{channel}_consent") != granted:
            setattr(member, f"{channel}_consent", granted)
            setattr(member, f"{channel}_consent_changed_at", now)
            changes.append((channel, granted))
    any_channel = any(getattr(member, f"{channel}_consent") for channel in CONSENT_CHANNELS)
    if changes and (created or any_channel != member.marketing_consent):
        member.marketing_consent = any_channel
        member.marketing_consent_changed_at = now
    return changes


def _consent_record(member: Member, changes: list[tuple[str, bool]], *, source: str, staff_user=None) -> None:
    if changes:
        ConsentChange.objects.bulk_create(
            ConsentChange(
                tenant_id=member.tenant_id,
                member=member,
                channel=channel,
                granted=granted,
                source=source,
                changed_at=getattr(member, f"{channel}_consent_changed_at"),
                staff_user=staff_user,
            )
            for channel, granted in changes
        )


def member_consent_set(
    *, member: Member, consent: dict[str, bool], source: str = ConsentChange.Source.API, staff_user=None
) -> Member:
    """Change a member's consent on the channels named in `consent` (the cockpit, an unsubscribe link, support).

    Refuses unknown channels and non-booleans with 400 `invalid_member`; a channel already so is not recorded.
    An erased member's consent stays withdrawn (409 `member_erased`).
    """
    errors = FieldErrors()
    wanted = _clean_consent(consent, errors)
    errors.raise_if_any("invalid_member", "The consent is not valid.")
    with transaction.atomic(durable=True):
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.status == Member.Status.ERASED:
            raise ApplicationError("member_erased", "This member's data was erased.", status=409)
        changes = _consent_apply(member, wanted, now=timezone.now())
        if changes:
            member._change_reason = "consent: " + ", ".join(f"{c}={'yes' if g else 'no'}" for c, g in changes)
            if staff_user is not None:
                member._history_user = staff_user
            member.save()
            _consent_record(member, changes, source=source, staff_user=staff_user)
    return member


# --- segments -----------------------------------------------------------------------------------


def member_set_status(*, member: Member, suspended: bool, reason: str, staff_user=None) -> Member:
    """Support suspends a member (their codes are refused, orders and events earn nothing) or reactivates them.

    An erased member stays erased. The change and its reason go to the member's history with the staff user.
    """
    errors = FieldErrors()
    reason = errors.text(reason, "reason", max_length=300, required=True, strip=True)
    errors.raise_if_any("validation_error", "A reason is required.")
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.status == Member.Status.ERASED:
            raise ApplicationError("member_erased", "This member's data was erased.", status=409)
        target = Member.Status.SUSPENDED if suspended else Member.Status.ACTIVE
        if member.status != target:
            member.status, member.status_reason, member.status_changed_at = target, reason, timezone.now()
            member._change_reason = f"{target}: {reason}"[:100]
            if staff_user is not None:
                member._history_user = staff_user
            member.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    return member


def segment_declare(
    *, tenant: Tenant, code: str, name: str, criteria: dict | None = None, kind: str = "dynamic"
) -> Segment:
    """Create or update a segment; dynamic criteria are checked (see `members.selectors.members_matching`)."""

    if kind not in Segment.Kind.values:
        raise field_error("invalid_segment", "Unknown segment kind.", "kind", "must be one of dynamic, static")
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


# --- program terms ------------------------------------------------------------------------------


def terms_current(tenant: Tenant | int, *, now=None) -> TermsVersion | None:
    """The tenant's current terms: the version published last (up to now); None before the first one."""
    return (
        TermsVersion.objects.for_tenant(tenant)
        .filter(published_at__isnull=False, published_at__lte=now or timezone.now())
        .order_by("-published_at", "-pk")
        .first()
    )


def terms_version_save(*, terms: TermsVersion) -> TermsVersion:
    """Save a new version or change a draft; a published version is never changed (members accepted it).

    Raises ApplicationError("terms_published", 409) for a version published before this save."""
    terms.full_clean()
    with transaction.atomic(durable=True):
        if terms.pk is not None:
            stored = TermsVersion.objects.select_for_update().get(pk=terms.pk)
            if stored.published_at is not None and stored.published_at <= timezone.now():
                raise ApplicationError(
                    "terms_published", "A published version cannot change: add a new version.", status=409
                )
        terms.save()
    return terms


def terms_accept(*, member: Member, terms: TermsVersion) -> tuple[TermsAcceptance, bool]:
    """Record that `member` accepted `terms` (once: a second acceptance returns the first); -> (row, created).

    Only the tenant's current version can be accepted (422 `terms_not_current`): what the member read is what
    they agree to."""
    current = terms_current(member.tenant_id)
    if current is None or current.pk != terms.pk or terms.tenant_id != member.tenant_id:
        raise ApplicationError("terms_not_current", "These terms are not the current ones.")
    with transaction.atomic(durable=True):
        return TermsAcceptance.objects.get_or_create(
            member=member, terms=terms, defaults={"tenant_id": member.tenant_id, "accepted_at": timezone.now()}
        )


# --- erasure (GDPR) -----------------------------------------------------------------------------

# What erasure empties on the member and on every one of their history rows (django-simple-history keeps the
# old values of each save). The consent flags are set apart (withdrawn and recorded), the ids replaced.
ERASED_VALUES: dict[str, Any] = {
    "email": "",
    "name": "",
    "phone": "",
    "country": "",
    "city": "",
    "birth_date": None,
    "attributes": {},
    "status_reason": "",
}


def _pseudonym(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def _external_id_free(member: Member) -> None:
    """Give an erased member (locked by the caller) a pseudonymous external id, on its history rows and on the
    other apps' copies too (so that the new member who takes the id is not mistaken for the old one there)."""
    before, pseudonym = member.external_id, _pseudonym("erased")
    Member.objects.filter(pk=member.pk).update(external_id=pseudonym)
    Member.history.filter(id=member.pk).update(external_id=pseudonym)
    member.external_id = pseudonym
    erase_copies(_erased(member, external_id_before=before))


def _erased(member: Member, *, external_id_before: str) -> Erased:
    return Erased(
        tenant_id=member.tenant_id,
        member_id=member.pk,
        created_at=member.created_at,
        external_id_before=external_id_before,
        external_id=member.external_id,
        referral_code=member.referral_code,
    )


def erasure_request_create(*, member: Member) -> tuple[ErasureRequest, bool]:
    """The member asks for erasure (the cockpit); one open request per member, a second ask returns it."""
    with transaction.atomic(durable=True):
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.status == Member.Status.ERASED:
            raise ApplicationError("member_erased", "This member's data was erased.", status=409)
        return ErasureRequest.objects.get_or_create(
            member=member,
            state=ErasureRequest.State.REQUESTED,
            defaults={"tenant_id": member.tenant_id, "requested_at": timezone.now()},
        )


def erasure_request_cancel(*, member: Member) -> int:
    """The member withdraws their open request before it is carried out; -> how many were cancelled (0 or 1)."""
    with transaction.atomic(durable=True):
        return ErasureRequest.objects.filter(member=member, state=ErasureRequest.State.REQUESTED).update(
            state=ErasureRequest.State.CANCELLED, cancelled_at=timezone.now()
        )


def member_erase(*, member: Member, staff_user=None, automatic: bool = False) -> tuple[Member, bool]:
    """Erase a member's personal data for good; -> (member, erased now). Safe to call twice (or at once).

    In one transaction with the member row locked: the personal fields are emptied on the member and on every
    history row of theirs, consent on every channel is withdrawn (and recorded), the referral code (built from
    the name) is replaced, custom events lose their metadata, unused sign-in links are forgotten, the copies
    other apps hold are scrubbed (`members.erasure`: the webhook outbox, stored API answers, traces), and the
    status becomes erased: the cockpit refuses them and nobody finds them by email. The external id is kept
    (reserved: upserting it is 409 `member_erased`) unless the tenant lets erased ids be reused; then it becomes
    a pseudonym. Orders, the ledger, redemptions and codes are untouched, so every sum and report stays equal.
    The open erasure request is marked carried out (one is recorded when staff erase without a request).
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        member = Member.objects.select_for_update().select_related("tenant").get(pk=member.pk)
        if member.status == Member.Status.ERASED:
            ErasureRequest.objects.filter(member=member, state=ErasureRequest.State.REQUESTED).update(
                state=ErasureRequest.State.CARRIED_OUT, carried_out_at=now, automatic=automatic
            )
            return member, False
        tenant, external_id_before = member.tenant, member.external_id
        changes = _consent_apply(member, dict.fromkeys(CONSENT_CHANNELS, False), now=now)
        for name, value in ERASED_VALUES.items():
            setattr(member, name, value)
        if tenant.erased_external_id_reusable:
            member.external_id = _pseudonym("erased")
        for _ in range(10):
            member.referral_code = f"X-{''.join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))}"
            if not Member.objects.for_tenant(tenant).filter(referral_code=member.referral_code).exists():
                break
        member.status, member.status_changed_at = Member.Status.ERASED, now
        # Every earlier version of the row holds the personal data as it was: overwrite them all (one UPDATE).
        Member.history.filter(id=member.pk).update(
            **ERASED_VALUES, external_id=member.external_id, referral_code=member.referral_code
        )
        member._change_reason = "erased"
        if staff_user is not None:
            member._history_user = staff_user
        member.save()
        _consent_record(member, changes, source=ConsentChange.Source.ERASURE, staff_user=staff_user)
        CustomEvent.objects.filter(member=member).exclude(metadata={}).update(metadata={})
        CockpitLinkUse.objects.filter(member=member).delete()
        erase_copies(_erased(member, external_id_before=external_id_before))  # the outbox, traces, answers
        done = {"state": ErasureRequest.State.CARRIED_OUT, "carried_out_at": now, "automatic": automatic}
        done["carried_out_by"] = staff_user
        if not ErasureRequest.objects.filter(member=member, state=ErasureRequest.State.REQUESTED).update(**done):
            ErasureRequest.objects.create(tenant=tenant, member=member, requested_at=now, **done)
    return member, True


def erasure_due_ids(*, now=None, limit: int = 500) -> list[int]:
    """Members whose erasure request has waited ERASURE_GRACE_DAYS (oldest first, at most `limit`)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.ERASURE_GRACE_DAYS)
    return list(
        ErasureRequest.objects.filter(state=ErasureRequest.State.REQUESTED, requested_at__lte=cutoff)
        .order_by("requested_at", "pk")
        .values_list("member_id", flat=True)[:limit]
    )


def used_tokens_prune(*, now=None) -> dict[str, int]:
    """Forget spent sign-in links and form tokens once they could no longer be used (two DELETE statements).

    A cockpit link expires COCKPIT_LINK_MINUTES after it was made, before it was used: its use row guards
    nothing after that. A form token is refused once older than FORM_TOKEN_MAX_AGE (`members.form_once`), and it
    was made before it was claimed, so its claim row guards nothing after that either."""
    now = now or timezone.now()
    links = CockpitLinkUse.objects.filter(used_at__lt=now - dt.timedelta(minutes=settings.COCKPIT_LINK_MINUTES))
    forms_ = FormSubmission.objects.filter(submitted_at__lt=now - FORM_TOKEN_MAX_AGE)
    return {"cockpit_links": links.delete()[0], "form_tokens": forms_.delete()[0]}
