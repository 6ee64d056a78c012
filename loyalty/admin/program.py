"""Admin for programs, tiers and earning rules.

Rules are checked when saved (`EarningRule.clean` runs `check_rule`). A program can be exported as the
`PUT /api/v1/programs/{code}` document (an action) and a document imported (the "Import a program document"
button), both through the same functions as the API: `program_document` and `program_declare`.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from loyalty.expiry import normalize_policy
from loyalty.models import EarningRule, MemberTier, Order, OrderItem, OrderReturn, Program, Tier, TierChange
from loyalty.selectors import program_document
from loyalty.services.program import program_declare
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin, tenants_for_user


class ProgramImportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=None)
    code = forms.SlugField(max_length=50)
    document = forms.CharField(widget=forms.Textarea(attrs={"rows": 24, "cols": 100}), help_text=_("JSON"))

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants_for_user(user)

    def clean_document(self):
        try:
            value = json.loads(self.cleaned_data["document"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": exc}) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The document must be a JSON object."))
        return value


def _clean_policy(value, *, optional: bool):
    if optional and not value:
        return None
    try:
        return normalize_policy(value or None)
    except ApplicationError as exc:
        raise forms.ValidationError("; ".join(f"{k}: {v}" for k, v in exc.details.items()) or exc.message) from exc


class ProgramForm(forms.ModelForm):
    class Meta:
        model = Program
        fields = (
            "tenant",
            "code",
            "name",
            "currency",
            "points_name",
            "expiry_policy",
            "points_value_points",
            "points_value_amount",
            "qualification_window_months",
            "expiry_warning_days",
            "active",
        )

    def clean_expiry_policy(self):
        return _clean_policy(self.cleaned_data.get("expiry_policy"), optional=False)


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ("tenant", "program", "code", "name", "rank", "threshold", "multiplier", "expiry_policy", "benefits")

    def clean_expiry_policy(self):
        return _clean_policy(self.cleaned_data.get("expiry_policy"), optional=True)


class TierInline(admin.TabularInline):
    model = Tier
    form = TierForm
    extra = 0
    fields = ("code", "name", "threshold", "multiplier", "rank", "expiry_policy")
    show_change_link = True


@admin.register(Program)
class ProgramAdmin(TenantScopedAdmin):
    list_display = ("code", "name", "tenant", "currency", "points_name", "active")
    list_filter = ("active", "tenant")
    search_fields = ("code", "name")
    inlines = [TierInline]
    actions = ["export_documents"]
    change_list_template = "admin/loyalty/program/change_list.html"

    form = ProgramForm

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for obj in instances:
            obj.tenant_id = form.instance.tenant_id  # tiers belong to their program's tenant
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()

    @admin.action(description=_("Export the program document (JSON)"))
    def export_documents(self, request, queryset):
        programs = list(queryset)
        if len(programs) == 1:
            body, name = program_document(programs[0]), programs[0].code
        else:
            body, name = {f"{p.tenant.slug}/{p.code}": program_document(p) for p in programs}, "programs"
        response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="loyalty_program_import"),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            raise PermissionDenied
        form = ProgramImportForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                program = program_declare(
                    tenant=form.cleaned_data["tenant"],
                    code=form.cleaned_data["code"],
                    document=form.cleaned_data["document"],
                )
            except ApplicationError as exc:
                details = "; ".join(f"{k}: {v}" for k, v in exc.details.items())
                form.add_error(None, f"{exc.message} {details}".strip())
            else:
                self.message_user(request, _("Program %(code)s declared.") % {"code": program.code}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:loyalty_program_change", args=[program.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Import a program document"),
        }
        return TemplateResponse(request, "admin/loyalty/program/import_document.html", context)


@admin.register(Tier)
class TierAdmin(TenantScopedAdmin):
    form = TierForm
    list_display = ("code", "name", "program", "threshold", "multiplier", "rank")
    list_filter = ("program__tenant", "program")
    list_select_related = ("program", "tenant")
    search_fields = ("code", "name")


@admin.register(EarningRule)
class EarningRuleAdmin(TenantScopedAdmin):
    list_display = ("code", "name", "program", "trigger", "event_name", "points", "points_per_unit", "active")
    list_filter = ("active", "trigger", "program__tenant")
    list_select_related = ("program", "tenant")
    search_fields = ("code", "name", "rule", "event_name")


@admin.register(MemberTier)
class MemberTierAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("member", "program", "tier", "qualifying_points", "changed_at", "evaluated_at")
    list_select_related = ("member", "program", "tier")
    list_filter = ("program", "tier")
    search_fields = ("member__external_id", "member__email")


@admin.register(TierChange)
class TierChangeAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("created_at", "member", "from_tier", "to_tier", "qualifying_points", "reason")
    list_select_related = ("member", "from_tier", "to_tier")
    list_filter = ("reason", "program")
    search_fields = ("member__external_id",)


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "category", "quantity", "unit_price", "returned_quantity")

    def has_add_permission(self, request, obj=None):
        return False


class OrderReturnInline(admin.TabularInline):
    model = OrderReturn
    extra = 0
    can_delete = False
    fields = ("return_id", "amount", "points_cancelled", "points_reversed", "debt_points", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("order_id", "member", "amount", "returned_amount", "points_total", "occurred_at", "tenant")
    list_select_related = ("member", "tenant")
    list_filter = ("tenant",)
    search_fields = ("order_id", "member__external_id")
    date_hierarchy = "occurred_at"
    inlines = [OrderItemInline, OrderReturnInline]
