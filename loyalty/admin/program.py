"""Admin for programs, tiers and earning rules: every change of a program is a declaration (`program_declare`).

The program page edits a program with its tiers and earning rules (inlines) as ONE document: the form and the
rows as edited become the `PUT /api/v1/programs/{code}` document (`program_document` over the unsaved rows),
and `program_declare` checks it whole and writes it in its own durable transaction, with its history records,
exactly as the API does. What it refuses is shown on the fields it names and nothing is written. The import
page declares a pasted document; the export action downloads one. Tiers and earning rules have no page of their
own to change them (view only): a tier or a rule is a part of its program's document.

Programs are never deleted here (accounts and orders point at them: deactivate one instead), and history
versions are viewed, not reverted (a revert would write one row outside the declaration).
"""

import json
import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from loyalty.expiry import normalize_policy
from loyalty.models import EarningRule, MemberTier, Order, OrderItem, OrderReturn, Program, Tier, TierChange
from loyalty.selectors import program_document
from loyalty.services.program import earning_rule_revert, program_declare, program_revert, tier_revert
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


# --- the document's error keys on the page's fields ----------------------------------------------------------

# Document key (`program_declare`'s error details) -> form field; a deeper key falls back on its parent
# ("expiry.days" -> "expiry_policy").
PROGRAM_FIELDS = {
    "code": "code",
    "name": "name",
    "currency": "currency",
    "points_name": "points_name",
    "expiry": "expiry_policy",
    "points_value.points": "points_value_points",
    "points_value.amount": "points_value_amount",
    "qualification_window_months": "qualification_window_months",
    "expiry_warning_days": "expiry_warning_days",
}
TIER_FIELDS = {
    "code": "code",
    "name": "name",
    "threshold": "threshold",
    "multiplier": "multiplier",
    "expiry": "expiry_policy",
    "benefits": "benefits",
}
RULE_FIELDS = {
    "code": "code",
    "name": "name",
    "trigger": "trigger",
    "event": "event_name",
    "points": "points",
    "points_per_unit": "points_per_unit",
    "unit_amount": "unit_amount",
    "rounding": "rounding",
    "categories": "categories",
    "rule": "rule",
    "tier_multipliers": "tier_multipliers",
    "happy_hours": "happy_hours",
    "cap": "cap_period",
    "cap.points": "cap_points",
    "pending_days": "pending_days",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
}
_ROW_KEY = re.compile(r"^(tiers|earning_rules)(?:\[(\d+)\])?(?:\.(.*))?$")


def _add_document_errors(form: forms.Form, errors: dict[str, str], fields: dict[str, str]) -> None:
    """Put the errors of one part of the document on the form fields they name (else on the whole form)."""
    for key, message in errors.items():
        parts = re.sub(r"\[\d+\]", "", key).split(".")  # "happy_hours[0].multiplier" is on "happy_hours"
        while parts and ".".join(parts) not in fields:
            parts.pop()
        field = fields.get(".".join(parts))
        if field in form.fields:
            form.add_error(field, message if ".".join(parts) == key else f"{key}: {message}")
        else:
            form.add_error(None, f"{key}: {message}" if key else message)


def _split_document_errors(details: dict[str, str]) -> dict[str, dict]:
    """{"program": {key: message}, "tiers"/"earning_rules": {row index or None (the list): {key: message}}}."""
    split: dict[str, dict] = {"program": {}, "tiers": {}, "earning_rules": {}}
    for key, message in (details or {}).items():
        row = _ROW_KEY.match(key)
        if row is None:
            split["program"][key] = message
            continue
        part, index, rest = row.groups()
        split[part].setdefault(None if index is None else int(index), {})[rest or ""] = message
    return split


# --- the program page ------------------------------------------------------------------------------------------


class ProgramForm(forms.ModelForm):
    # Set (on a subclass, by `ProgramAdmin.get_form`) when `program_declare` refused this page's document.
    declaration_error: ApplicationError | None = None

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

    def clean(self):
        cleaned = super().clean()
        if self.declaration_error is not None:
            self.add_error(None, _("Nothing was saved: %(message)s") % {"message": self.declaration_error.message})
            errors = _split_document_errors(self.declaration_error.details)["program"]
            _add_document_errors(self, errors, PROGRAM_FIELDS)
        return cleaned


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ("code", "name", "threshold", "multiplier", "expiry_policy", "benefits")

    def clean_expiry_policy(self):
        return _clean_policy(self.cleaned_data.get("expiry_policy"), optional=True)


class EarningRuleForm(forms.ModelForm):
    class Meta:
        model = EarningRule
        fields = (
            "code",
            "name",
            "trigger",
            "event_name",
            "points",
            "points_per_unit",
            "unit_amount",
            "rounding",
            "categories",
            "rule",
            "apply_tier_multiplier",
            "tier_multipliers",
            "happy_hours",
            "cap_points",
            "cap_period",
            "pending_days",
            "starts_at",
            "ends_at",
            "priority",
            "active",
        )


class ProgramPartFormSet(forms.BaseInlineFormSet):
    """The tiers or the earning rules of the program page: rows of its document, never saved on their own."""

    part = ""  # "tiers" or "earning_rules"
    document_fields: dict[str, str] = {}

    def __init__(self, *args, declaration_errors: dict | None = None, **kwargs):
        self.declaration_errors = declaration_errors or {}
        super().__init__(*args, **kwargs)

    def _deleted(self, form) -> bool:
        return self.can_delete and self._should_delete_form(form)

    def document_rows(self) -> list[tuple[forms.ModelForm | None, Tier | EarningRule]]:
        """The rows the document names, in its order (a refusal's `tiers[n]` is the n-th): (form, row as edited).

        Saved rows the page does not show (added since it was loaded) come with no form and are kept, as an
        inline keeps what it does not show: declaring the page must not delete them.
        """
        rows = [
            (f, f.instance) for f in self.forms if not self._deleted(f) and (f in self.initial_forms or f.has_changed())
        ]
        shown = {f.instance.pk for f in self.initial_forms}
        return rows + [(None, row) for row in self.get_queryset() if row.pk not in shown]

    def clean(self):
        super().clean()
        for form in self.initial_forms:
            if not self._deleted(form) and "code" in form.changed_data:
                # The declaration matches rows by code: a new code would delete the row and create another.
                form.add_error("code", _("The code of a saved row cannot change: delete the row and add a new one."))
        if not self.declaration_errors:
            return
        rows, whole = self.document_rows(), []
        for index, errors in _split_document_errors(self.declaration_errors)[self.part].items():
            if index is not None and index < len(rows) and rows[index][0] is not None:
                _add_document_errors(rows[index][0], errors, self.document_fields)
            else:  # about the whole list ("thresholds must differ"), or a row not on the page
                prefix = self.part if index is None else f"{self.part}[{index}]"
                whole += [
                    f"{prefix}.{key}: {message}" if key else f"{prefix}: {message}" for key, message in errors.items()
                ]
        if whole:
            raise ValidationError(whole)


class TierFormSet(ProgramPartFormSet):
    part = "tiers"
    document_fields = TIER_FIELDS


class EarningRuleFormSet(ProgramPartFormSet):
    part = "earning_rules"
    document_fields = RULE_FIELDS

    def document_rows(self):
        # Rules apply in the document's order, renumbered 0, 1, ... by the declaration.
        return sorted(super().document_rows(), key=lambda entry: entry[1].priority or 0)


class ProgramPartInline:
    """An inline part of the program's document: changed with the program, under the program's permissions."""

    def _program_admin(self):
        return self.admin_site.get_model_admin(self.parent_model)

    def _may_declare(self, request, obj) -> bool:
        program_admin = self._program_admin()
        if obj is None:
            return program_admin.has_add_permission(request)
        return program_admin.has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._may_declare(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_declare(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_declare(request, obj)

    def has_view_permission(self, request, obj=None):
        return self._program_admin().has_view_permission(request, obj)


class TierInline(ProgramPartInline, admin.TabularInline):
    model = Tier
    form = TierForm
    formset = TierFormSet
    extra = 0
    fields = ("code", "name", "threshold", "multiplier", "expiry_policy", "rank")
    readonly_fields = ("rank",)  # derived from the thresholds' order by the declaration
    show_change_link = True


class EarningRuleInline(ProgramPartInline, admin.StackedInline):
    model = EarningRule
    form = EarningRuleForm
    formset = EarningRuleFormSet
    extra = 0
    fields = (
        ("code", "name", "active", "priority"),
        ("trigger", "event_name"),
        ("points", "points_per_unit", "unit_amount", "rounding"),
        "rule",
        ("categories", "apply_tier_multiplier", "tier_multipliers"),
        "happy_hours",
        ("cap_points", "cap_period", "pending_days"),
        ("starts_at", "ends_at"),
    )
    show_change_link = True


class _Refused(Exception):
    """`program_declare` refused the page's document: nothing was written."""

    def __init__(self, error: ApplicationError):
        self.error = error


class DeclaredOnlyHistoryMixin:
    """A version is never restored by saving its row (that would save one row outside the declaration): the
    revert page (`members.admin_history`) declares the program again with the earlier version in it."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


@admin.register(Program)
class ProgramAdmin(DeclaredOnlyHistoryMixin, TenantScopedAdmin):
    list_display = ("code", "name", "tenant", "currency", "points_name", "active")
    list_filter = ("active", "tenant")
    search_fields = ("code", "name")
    inlines = [TierInline, EarningRuleInline]
    actions = ["export_documents"]
    change_list_template = "admin/loyalty/program/change_list.html"

    form = ProgramForm

    def history_revert(self, request, obj, record, reason):
        program_revert(program=obj, history_id=record.pk, reason=reason)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        # The declaration's key: another tenant or code would declare another program.
        return fields + ("tenant", "code") if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        return False

    # --- writes: one declaration per save ---------------------------------------------------------------

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in a transaction as ModelAdmin does: program_declare owns its (durable) transaction.
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            # Nothing was written: the same page again, with the service's errors on the fields they name.
            request.program_declaration_error = refused.error
            return self._changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        error = getattr(request, "program_declaration_error", None)
        if error is not None:
            form = type(form.__name__, (form,), {"declaration_error": error})
        return form

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        error = getattr(request, "program_declaration_error", None)
        if error is not None and issubclass(inline.formset, ProgramPartFormSet):
            kwargs["declaration_errors"] = error.details
        return kwargs

    def save_model(self, request, obj, form, change):
        """Nothing is saved here: `save_related` declares the program together with its inlines."""

    def save_related(self, request, form, formsets, change):
        program = form.instance
        parts = {fs.part: fs for fs in formsets if isinstance(fs, ProgramPartFormSet)}
        rows = {
            part: [row for _form, row in parts[part].document_rows()] if part in parts else (None if change else [])
            for part in ("tiers", "earning_rules")
        }
        document = program_document(program, tiers=rows["tiers"], rules=rows["earning_rules"])
        try:
            declared = program_declare(tenant=program.tenant, code=program.code, document=document)
        except ApplicationError as exc:
            raise _Refused(exc) from exc
        program.pk = declared.pk
        program._state.adding = False
        for formset in formsets:
            formset.save(commit=False)  # writes nothing: what the admin's change message lists

    # --- the document: export and import ----------------------------------------------------------------

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


class ProgramPartAdmin(DeclaredOnlyHistoryMixin, TenantScopedAdmin):
    """Tiers and earning rules, view only: they change on their program's page, in its declaration."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revert_permission(self, request, obj) -> bool:
        # Tiers and rules change in their program's declaration: reverting one needs change rights on the program.
        user, perm = request.user, "loyalty.change_program"
        return self.history_revert is not None and (user.has_perm(perm) or user.has_perm(perm, obj.program))


@admin.register(Tier)
class TierAdmin(ProgramPartAdmin):
    list_display = ("code", "name", "program", "threshold", "multiplier", "rank")
    list_filter = ("program__tenant", "program")
    list_select_related = ("program", "tenant")
    search_fields = ("code", "name")

    def history_revert(self, request, obj, record, reason):
        tier_revert(tier=obj, history_id=record.pk, reason=reason)


@admin.register(EarningRule)
class EarningRuleAdmin(ProgramPartAdmin):
    list_display = ("code", "name", "program", "trigger", "event_name", "points", "points_per_unit", "active")
    list_filter = ("active", "trigger", "program__tenant")
    list_select_related = ("program", "tenant")
    search_fields = ("code", "name", "rule", "event_name")

    def history_revert(self, request, obj, record, reason):
        earning_rule_revert(rule=obj, history_id=record.pk, reason=reason)


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
