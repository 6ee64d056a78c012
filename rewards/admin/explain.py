"""Explain this decision: every validation and redemption attempt, why each code applied or was refused.

The list is the failed-attempts console (filter by outcome, reason, channel, tenant, date; search by order id,
member or code). A trace's page explains it code by code in the order they were applied, with the counters
as the attempt read them, and can replay the same input against today's configuration (nothing written).
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns import stacking
from campaigns.engine import MESSAGES, message
from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedReadOnlyAdmin
from members.models import Member
from rewards.models import EvaluationTrace
from rewards.services.redemption import validate

STAGES = {
    stacking.STAGE_PROMOTION: _("automatic promotion"),
    stacking.STAGE_DISCOUNT: _("discount"),
    stacking.STAGE_GIFT_CARD: _("gift card"),
    stacking.STAGE_POINTS: _("points"),
}


class RefusalReasonFilter(admin.SimpleListFilter):
    title = _("refusal reason")
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return [(code, code) for code in sorted(MESSAGES)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(reasons__icontains=f'"{self.value()}"')  # the JSON list as text, any database
        return queryset


def explained_line(line: dict) -> dict:
    """One decision in words for support: what it was, whether it applied and why, the counters then."""
    counters = line.get("counters") or {}
    limits = []
    for used, limit, label in (
        ("redemptions_count", "redemptions_total", _("redemptions")),
        ("discount_used", "discount_total", _("discount")),
        ("order_value_used", "order_value_total", _("order value")),
    ):
        if limit in counters:
            limits.append(
                _("%(label)s %(used)s of %(limit)s")
                % {"label": label, "used": counters[used], "limit": counters[limit]}
            )
    if "code_uses" in line:
        limits.append(_("code used %(used)s of %(limit)s times") % line["code_uses"])
    conditions = []
    for condition in line.get("conditions") or []:
        if "error" in condition:
            verdict = _("could not be evaluated: %(error)s") % {"error": condition["error"]}
        elif "value" in condition:
            verdict = (
                _("held (the value was %(value)s)")
                if condition["holds"]
                else _("did not hold (the value was %(value)s)")
            ) % {"value": condition["value"]}
        else:
            verdict = _("held") if condition["holds"] else _("did not hold")
        conditions.append({"condition": condition["condition"], "holds": condition.get("holds"), "verdict": verdict})
    return {
        **line,
        "conditions": conditions,
        "message": message(line["reason"]) if line.get("reason") else "",
        "stage_name": STAGES.get(line.get("stage"), ""),
        "limits": limits,
    }


@admin.register(EvaluationTrace)
class EvaluationTraceAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("created_at", "kind", "outcome", "order_id", "member_external_id", "codes", "reasons", "channel")
    list_filter = (
        "succeeded",
        "kind",
        RefusalReasonFilter,
        "channel",
        "tenant",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("order_id", "member_external_id", "codes")
    ordering = ("-created_at",)
    show_full_result_count = False  # millions of rows: no COUNT(*) of the whole table per page

    @admin.display(description=_("outcome"), boolean=True)
    def outcome(self, obj):
        return obj.succeeded

    def get_urls(self):
        return [
            path(
                "<int:pk>/replay/", self.admin_site.admin_view(self.replay_view), name="rewards_evaluationtrace_replay"
            ),
            *super().get_urls(),
        ]

    def _context(self, request, trace: EvaluationTrace, **extra):
        document = trace.document
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": trace,
            "title": _("Why: %(trace)s") % {"trace": trace},
            "lines": [explained_line(x) for x in document.get("lines", [])],
            "promotions": [explained_line(x) for x in document.get("promotions", [])],
            "document": document,
            "member": Member.objects.filter(pk=trace.member_id, tenant_id=trace.tenant_id).first()
            if trace.member_id
            else None,
            **extra,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        trace = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, trace):
            raise PermissionDenied
        return TemplateResponse(request, "admin/rewards/evaluationtrace/explain.html", self._context(request, trace))

    def replay_view(self, request, pk: int):
        """The same input through the engine now, with today's configuration; nothing is written."""
        trace = get_object_or_404(self.get_queryset(request).select_related("tenant"), pk=pk)
        if request.method != "POST" or not self.has_view_permission(request, trace):
            raise PermissionDenied
        given = trace.document.get("input", {})
        member = (
            Member.objects.filter(pk=trace.member_id, tenant_id=trace.tenant_id).first() if trace.member_id else None
        )
        try:
            today = validate(
                tenant=trace.tenant,
                member=member,
                order=given.get("order") or {},
                codes=given.get("codes") or [],
                points=given.get("points") or 0,
                trace=False,
            ).as_dict()
            error = ""
        except ApplicationError as exc:
            today, error = None, exc.message
        then = {c["code"]: c for c in trace.document.get("lines", [])}
        differences = []
        for code in (today or {}).get("codes", []):
            before = then.get(code["code"], {})
            if (before.get("valid"), before.get("reason"), before.get("discount")) != (
                code.get("valid"),
                code.get("reason"),
                code.get("discount"),
            ):
                differences.append({"code": code["code"], "then": before, "now": code})
        context = self._context(request, trace, replay=today, replay_error=error, differences=differences)
        return TemplateResponse(request, "admin/rewards/evaluationtrace/explain.html", context)


def explain_link(redemption_id: int) -> str:
    trace = EvaluationTrace.objects.filter(redemption_id=redemption_id).only("pk").first()
    if trace is None:
        return "-"
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:rewards_evaluationtrace_change", args=[trace.pk]), _("explain")
    )
