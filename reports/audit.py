"""The audit page: who did what, when, across the apps, read from the records that already hold it.

- every configuration and master-data change: the django-simple-history tables (created / changed / deleted,
  with the user and the reason);
- staff actions on members' points: ledger adjustments and reversals made by a staff user;
- staff sign-ins and failed sign-ins (lockouts included): django-axes' AccessLog and AccessFailureLog.

One UNION ALL query gives a page (and one its count), whatever the number of sources: each source is a
`values()` query with the same columns, filtered before the union (Django filters no union). Tenant-scoped for
non-superusers where the record has a tenant; records without one (sign-ins) are shown to all who may see the page.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass

from axes.models import AccessFailureLog, AccessLog
from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import BigIntegerField, Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Coalesce
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from loyalty.models import LedgerEntry
from members.admin_tenancy import tenants_for_user
from members.models import Tenant

PERMISSION = "reports.view_audit"
PER_PAGE = 50
COLUMNS = ("a_when", "a_action", "a_source", "a_object", "a_label", "a_user", "a_tenant", "a_reason", "a_ref")
CSV_HEADER = ("when", "action", "model", "object id", "object", "user", "tenant id", "reason / detail")

ACTIONS = {
    "created": _("created"),
    "changed": _("changed"),
    "deleted": _("deleted"),
    "adjustment": _("points adjusted by staff"),
    "reversal": _("points reversed by staff"),
    "signed_in": _("signed in"),
    "sign_in_failed": _("sign-in failed"),
    "locked_out": _("sign-in locked out"),
}
SIGN_IN_SOURCE = "sign-in"
LEDGER_SOURCE = "loyalty.ledgerentry"


def history_models() -> list:
    """Every model with django-simple-history, by label (campaigns, members, tiers, API keys, webhooks...)."""
    found = [m for m in apps.get_models() if hasattr(m._meta, "simple_history_manager_attribute")]
    return sorted(found, key=lambda m: m._meta.label_lower)


def _label_field(model) -> str | None:
    names = {f.name for f in model._meta.concrete_fields}
    return next((n for n in ("name", "code", "external_id", "slug", "url") if n in names), None)


def _tenant_expr(model):
    if model is Tenant:
        return Cast(F("id"), BigIntegerField())
    names = {f.name for f in model._meta.concrete_fields}
    if "tenant" in names:
        return Cast(F("tenant_id"), BigIntegerField())
    if "integration" in names:  # API keys belong to their integration's tenant
        return Cast(F("integration__tenant_id"), BigIntegerField())
    return Cast(Value(None), BigIntegerField())


def _text(value) -> Cast:
    return Cast(value, CharField())


def _history_source(model) -> QuerySet:
    history = model.history.model
    label = _label_field(model)
    return history.objects.annotate(
        a_when=F("history_date"),
        a_action=Case(
            When(history_type="+", then=Value("created")),
            When(history_type="-", then=Value("deleted")),
            default=Value("changed"),
            output_field=CharField(),
        ),
        a_source=Value(model._meta.label_lower, output_field=CharField()),
        a_object=_text(F(model._meta.pk.attname)),
        a_label=_text(F(label)) if label else Value("", output_field=CharField()),
        a_user=Coalesce(F("history_user__username"), Value(""), output_field=CharField()),
        a_tenant=_tenant_expr(model),
        a_reason=Coalesce(F("history_change_reason"), Value(""), output_field=CharField()),
        a_ref=Cast(F("history_id"), BigIntegerField()),
    )


def _ledger_source() -> QuerySet:
    return LedgerEntry.objects.filter(
        staff_user__isnull=False, kind__in=[LedgerEntry.Kind.ADJUST, LedgerEntry.Kind.REVERSE]
    ).annotate(
        a_when=F("created_at"),
        a_action=Case(
            When(kind=LedgerEntry.Kind.ADJUST, then=Value("adjustment")),
            default=Value("reversal"),
            output_field=CharField(),
        ),
        a_source=Value(LEDGER_SOURCE, output_field=CharField()),
        a_object=_text(F("account_id")),
        a_label=_text(F("points")),
        a_user=Coalesce(F("staff_user__username"), Value(""), output_field=CharField()),
        a_tenant=Cast(F("tenant_id"), BigIntegerField()),
        a_reason=Coalesce(F("reason"), Value(""), output_field=CharField()),
        a_ref=Cast(F("id"), BigIntegerField()),
    )


def _sign_in_source(model, action) -> QuerySet:
    return model.objects.annotate(
        a_when=F("attempt_time"),
        a_action=action,
        a_source=Value(SIGN_IN_SOURCE, output_field=CharField()),
        a_object=Value("", output_field=CharField()),
        a_label=Value("", output_field=CharField()),
        a_user=Coalesce(F("username"), Value(""), output_field=CharField()),
        a_tenant=Cast(Value(None), BigIntegerField()),
        a_reason=Coalesce(_text(F("ip_address")), Value(""), output_field=CharField()),
        a_ref=Cast(F("id"), BigIntegerField()),
    )


def _sources() -> dict[str, list[QuerySet]]:
    """Source key -> its queries (the sign-ins have two: successes and failures)."""
    failed = Case(
        When(locked_out=True, then=Value("locked_out")), default=Value("sign_in_failed"), output_field=CharField()
    )
    sources = {m._meta.label_lower: [_history_source(m)] for m in history_models()}
    sources[LEDGER_SOURCE] = [_ledger_source()]
    sources[SIGN_IN_SOURCE] = [
        _sign_in_source(AccessLog, Value("signed_in", output_field=CharField())),
        _sign_in_source(AccessFailureLog, failed),
    ]
    return sources


def source_choices() -> list[tuple[str, str]]:
    choices = [(m._meta.label_lower, f"{m._meta.app_label}: {m._meta.verbose_name}") for m in history_models()]
    return [*choices, (LEDGER_SOURCE, str(_("loyalty: ledger entry (staff)"))), (SIGN_IN_SOURCE, str(_("sign-ins")))]


class AuditFilterForm(forms.Form):
    user = forms.CharField(label=_("User"), required=False)
    model = forms.ChoiceField(label=_("Model"), required=False)
    tenant = forms.ModelChoiceField(label=_("Tenant"), queryset=Tenant.objects.none(), required=False)
    action = forms.ChoiceField(label=_("Action"), required=False, choices=[("", "---------"), *ACTIONS.items()])
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, tenants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants
        self.fields["model"].choices = [("", "---------"), *source_choices()]


@dataclass(frozen=True)
class Scope:
    tenant_ids: list[int] | None  # None: every tenant (superusers)


def audit_entries(*, scope: Scope, filters: dict) -> QuerySet:
    """The filtered entries, newest first, as one UNION ALL query of `COLUMNS` rows."""
    wanted = Q()
    if filters.get("user"):
        wanted &= Q(a_user=filters["user"])
    if filters.get("action"):
        wanted &= Q(a_action=filters["action"])
    if filters.get("tenant"):
        wanted &= Q(a_tenant=filters["tenant"].pk)
    if filters.get("since"):
        wanted &= Q(a_when__gte=dt.datetime.combine(filters["since"], dt.time.min, tzinfo=dt.UTC))
    if filters.get("until"):
        wanted &= Q(a_when__lt=dt.datetime.combine(filters["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC))
    if scope.tenant_ids is not None:
        wanted &= Q(a_tenant__isnull=True) | Q(a_tenant__in=scope.tenant_ids)
    parts = [
        qs.filter(wanted).values(*COLUMNS).order_by()
        for key, queries in _sources().items()
        if not filters.get("model") or filters["model"] == key
        for qs in queries
    ]
    first, *rest = parts
    return first.union(*rest, all=True).order_by("-a_when", "-a_ref") if rest else first.order_by("-a_when", "-a_ref")


class _Echo:
    def write(self, value):
        return value


def _csv_rows(entries):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for row in entries.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                row["a_when"].isoformat(),
                row["a_action"],
                row["a_source"],
                row["a_object"],
                row["a_label"],
                row["a_user"],
                row["a_tenant"] if row["a_tenant"] is not None else "",
                row["a_reason"],
            ]
        )


def audit_view(request):
    """The global audit page (`/admin/audit/`), `?format=csv` streams the filtered entries."""
    user = request.user
    if not user.has_perm(PERMISSION):
        raise PermissionDenied
    tenants = tenants_for_user(user)
    form = AuditFilterForm(request.GET or None, tenants=tenants)
    filters = form.cleaned_data if form.is_valid() else {}
    scope = Scope(tenant_ids=None if user.is_superuser else list(tenants.values_list("pk", flat=True)))
    entries = audit_entries(scope=scope, filters=filters)
    if request.GET.get("format") == "csv":
        response = StreamingHttpResponse(_csv_rows(entries), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **admin.site.each_context(request),
        "title": _("Audit: who did what"),
        "form": form,
        "page": page,
        "rows": [{**row, "a_action_label": ACTIONS.get(row["a_action"], row["a_action"])} for row in page],
        "query": query.urlencode(),
    }
    return TemplateResponse(request, "admin/reports/audit.html", context)
