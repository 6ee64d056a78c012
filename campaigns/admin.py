"""The campaign console: a client of `campaigns.services` (no direct writes of domain state).

- Campaigns: tenant-scoped, per-object rights, history; saving goes through `campaign_create` /
  `campaign_update` (same validation as the API); enable/disable actions need `campaigns.enable_campaign`
  (Junior marketers and Support agents lack it); "Generate codes" queues the bulk generation task;
  "Test rule" runs the campaign's rule and the whole validation against a member and a sample order;
  stats at a glance in the list and on the page; circuit breaker alerts are shown as admin messages.
- The marketing console's pieces live in `campaigns.console`: the list's bars, flags, filters and search by code
  and the page's figures, chart, history and cloning (`glance`), bulk actions with a confirmation and a reason
  (`bulk`), the incentive, active hours and stacking as plain form fields (`forms`).
- Codes: CSV export and import (django-import-export), scoped to the user's tenants.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources
from import_export.admin import ImportExportModelAdmin
from import_export.widgets import ForeignKeyWidget

from campaigns import services
from campaigns.admin_rights import CampaignRightsMixin
from campaigns.console.bulk import CampaignBulkActionsMixin
from campaigns.console.forms import HOUR_FIELDS, LIMIT_HELP, IncentiveFieldsMixin
from campaigns.console.glance import (
    AttentionFilter,
    CampaignGlanceMixin,
    CodeCampaignFilter,
    OwnerFilter,
    StatusFilter,
    TenantFilter,
)
from campaigns.models import Campaign, CampaignAlert, Code, CodeGenerationJob, Publication
from campaigns.selectors import campaign_input_document, campaign_stats, campaign_status
from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedAdmin, TenantScopedAdminMixin, TenantScopedReadOnlyAdmin, tenants_for_user
from members.form_once import one_time, submitted_once
from members.models import Member

ENABLE_PERMISSION = services.ENABLE_PERMISSION

# Service error keys -> admin form fields.
FIELD_OF = {
    "limits.redemptions_per_member_per_period": "redemptions_per_member_period",
    "stacking.category": "stacking_category",
    "gift_card.amount": "gift_card_amount",
    "circuit_breaker.multiple": "breaker_multiple",
    "circuit_breaker.window_minutes": "breaker_window_minutes",
    "circuit_breaker.min_redemptions": "breaker_min_redemptions",
}


def _form_field(key: str) -> str:
    if key in FIELD_OF:
        return FIELD_OF[key]
    head, _dot, tail = key.partition(".")
    if head in ("discount", "referral"):  # the incentive's own fields (campaigns.console.forms)
        return f"{head}_{tail}" if tail and tail != "type" else f"{head}_type"
    if head == "active_hours":
        return HOUR_FIELDS[0]
    return tail if head in ("limits", "stacking") else head


class CampaignAdminForm(IncentiveFieldsMixin, forms.ModelForm):
    class Meta:
        model = Campaign
        fields = (
            "tenant",
            "name",
            "description",
            "type",
            "enabled",
            "owner",
            "gift_card_amount",
            "starts_at",
            "ends_at",
            "rule",
            "redemptions_total",
            "redemptions_per_member",
            "redemptions_per_member_period",
            "member_period",
            "redemptions_per_day",
            "redemptions_per_week",
            "redemptions_per_month",
            "discount_total",
            "order_value_total",
            "stacking_category",
            "exclusive",
            "combinable_with",
            "max_codes_per_order",
            "priority",
            "code_usage_limit",
            "code_expires_at",
            "breaker_enabled",
            "breaker_multiple",
            "breaker_window_minutes",
            "breaker_min_redemptions",
        )
        help_texts = LIMIT_HELP

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        kind = self.instance.type if self.instance.pk else cleaned.get("type")
        cleaned.update(self.incentive_documents(kind))
        if self.errors:
            return cleaned
        probe = Campaign(**{k: v for k, v in cleaned.items() if k in {f.name for f in Campaign._meta.fields}})
        if self.instance.pk:
            probe.type = self.instance.type
        doc = campaign_input_document(probe)
        if not self.instance.pk:
            doc["type"] = probe.type
        errors = services.campaign_check(data=doc, campaign=self.instance if self.instance.pk else None)
        for key, message in errors.items():
            field = _form_field(key)
            target = field if field in self.fields else None
            self.add_error(target, message if target and "." not in key else f"{key}: {message}")
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        for key in ("discount", "config", "active_hours"):  # not model fields of the form: built by `clean`
            if key in self.cleaned_data:
                setattr(self.instance, key, self.cleaned_data[key])


class GenerateCodesForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=services.MAX_CODES, initial=1000)
    pattern = forms.CharField(max_length=50, initial="SPR-####-????", help_text=_("# digit, ? letter, * either"))


@admin.register(Campaign)
class CampaignAdmin(CampaignRightsMixin, CampaignGlanceMixin, CampaignBulkActionsMixin, TenantScopedAdmin):
    form = CampaignAdminForm
    list_display = (
        "name",
        "type",
        "status_badge",
        "dates",
        "redemptions",
        "discount_given",
        "budget_left",
        "last_activity",
        "flags",
        "codes_count",
        "tenant",
    )
    list_filter = (StatusFilter, "type", OwnerFilter, TenantFilter, AttentionFilter)
    search_fields = ("name",)  # and codes: `CampaignGlanceMixin.get_search_results`
    search_help_text = _("A name, or one of its codes.")
    readonly_fields = (
        "stats_at_a_glance",
        "redemptions_count",
        "discount_used",
        "order_value_used",
        "redemptions_failed",
        "published_count",
        "codes_count",
        "budget_exhausted_at",
        "disabled_reason",
        "disabled_at",
        "created_at",
        "updated_at",
        "code_pattern",
    )
    actions = ["enable_selected", "disable_selected", "extend_end_date", "change_limit", "clone_selected"]
    history_revert_keeps = services.REVERT_KEEPS  # counters and budgets spent: a revert leaves them (history pages)

    def history_revert(self, request, obj, record, reason):
        services.campaign_revert(campaign=obj, history_id=record.pk, user=request.user, reason=reason)

    fieldsets = (
        (None, {"fields": ("tenant", "name", "description", "type", "enabled", "owner", "stats_at_a_glance")}),
        (
            _("Incentive"),
            {
                "fields": (
                    "discount_type",
                    "discount_value",
                    "discount_max_amount",
                    "discount_min_order_amount",
                    "discount_sku",
                    "discount_quantity",
                    ("discount_buy_sku", "discount_buy_category", "discount_buy_quantity"),
                    ("discount_get_sku", "discount_get_category", "discount_get_quantity"),
                    "discount_get_percent",
                    "discount_tiers",
                    "discount_skus",
                    "discount_categories",
                    "gift_card_amount",
                    "referral_points",
                    "referral_min_order_amount",
                    "referral_reward_campaign",
                )
            },
        ),
        (_("When and for whom"), {"fields": ("starts_at", "ends_at", "rule")}),
        (
            _("Active hours"),
            {
                "description": _("Up to four windows in the tenant's time zone; none: at any time."),
                "fields": [tuple(HOUR_FIELDS[i : i + 3]) for i in range(0, len(HOUR_FIELDS), 3)],
            },
        ),
        (
            _("Limits and budgets"),
            {
                "fields": (
                    "redemptions_total",
                    "redemptions_per_member",
                    "redemptions_per_member_period",
                    "member_period",
                    "redemptions_per_day",
                    "redemptions_per_week",
                    "redemptions_per_month",
                    "discount_total",
                    "order_value_total",
                )
            },
        ),
        (
            _("Stacking"),
            {"fields": ("stacking_category", "exclusive", "combinable_with", "max_codes_per_order", "priority")},
        ),
        (_("Codes"), {"fields": ("code_pattern", "code_usage_limit", "code_expires_at")}),
        (
            _("Circuit breaker"),
            {"fields": ("breaker_enabled", "breaker_multiple", "breaker_window_minutes", "breaker_min_redemptions")},
        ),
        (
            _("Counters"),
            {
                "classes": ("collapse",),
                "fields": (
                    "redemptions_count",
                    "discount_used",
                    "order_value_used",
                    "redemptions_failed",
                    "published_count",
                    "codes_count",
                    "budget_exhausted_at",
                    "disabled_reason",
                    "disabled_at",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
    )

    # --- display -----------------------------------------------------------------------------------

    @admin.display(description=_("status"))
    def status_badge(self, obj):
        return campaign_status(obj)

    @admin.display(description=_("budget left"))
    def budget_left(self, obj):
        if obj.discount_total is None:
            return "-"
        return obj.discount_total - obj.discount_used

    def page_links(self, obj) -> list[tuple[str, str]]:
        """(label, address) of the campaign's own pages, shown with its figures."""
        return [
            (_("Generate codes"), reverse("admin:campaigns_campaign_generate_codes", args=[obj.pk])),
            (_("Codes of this campaign"), reverse("admin:campaigns_code_changelist") + f"?campaign={obj.pk}"),
            *admin_triggers.campaign_trigger_links(obj),  # what its triggers did (campaigns.admin_triggers)
            *distribution_links(obj),
        ]

    @admin.display(description=_("stats"))
    def stats_at_a_glance(self, obj):
        if not obj or not obj.pk:
            return "-"
        stats = campaign_stats(obj)
        links = format_html_join(
            "", ' &middot; <a href="{}">{}</a>', ((url, label) for label, url in self.page_links(obj))
        )
        return format_html(
            "{} published &middot; {} redeemed &middot; {} failed &middot; {} discount &middot; {} order value{}",
            stats["published"],
            stats["redeemed"],
            stats["redemptions_failed"],
            stats["discount_total"],
            stats["order_value_total"],
            links,
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly.append("type")
        if not request.user.has_perm(ENABLE_PERMISSION):
            readonly.append("enabled")
        return readonly

    def changelist_view(self, request, extra_context=None):
        tenant_ids = (
            None if request.user.is_superuser else list(tenants_for_user(request.user).values_list("pk", flat=True))
        )
        for alert in services_alerts(tenant_ids)[:5]:
            self.message_user(request, alert.message, messages.WARNING)
        return super().changelist_view(request, extra_context)

    # --- writes through the services ---------------------------------------------------------------

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in a transaction as ModelAdmin does: the services own their (durable) transactions.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        doc = campaign_input_document(obj)
        try:
            if not change:
                doc["type"] = obj.type
                doc["enabled"] = obj.enabled
                created = services.campaign_create(tenant=obj.tenant, data=doc, user=request.user)
                obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
                obj._state.adding = False
                return
            current = Campaign.objects.get(pk=obj.pk)
            if "enabled" in form.changed_data:
                doc["enabled"] = obj.enabled
            settings = {f: getattr(obj, f) for f in services.ADMIN_SETTINGS if f in form.changed_data}
            updated = services.campaign_update(campaign=current, data=doc, user=request.user, admin_settings=settings)
            obj.__dict__.update({k: v for k, v in updated.__dict__.items() if not k.startswith("_")})
        except ApplicationError as exc:
            self.message_user(request, f"{exc.message} {exc.details or ''}", messages.ERROR)

    def has_delete_permission(self, request, obj=None):
        return False  # campaigns are disabled, never deleted (redemptions point at them)

    def has_enable_permission(self, request):
        return request.user.has_perm(ENABLE_PERMISSION)

    # --- extra views --------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<int:pk>/generate-codes/",
                self.admin_site.admin_view(self.generate_codes_view),
                name="campaigns_campaign_generate_codes",
            ),
            *super().get_urls(),
        ]

    def _campaign_or_404(self, request, pk):
        return get_object_or_404(self.get_queryset(request), pk=pk)

    def generate_codes_view(self, request, pk):
        campaign = self._campaign_or_404(request, pk)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        form = one_time(
            GenerateCodesForm(request.POST or None, initial={"pattern": campaign.code_pattern or "SPR-####-????"})
        )
        if request.method == "POST" and form.is_valid():
            try:
                with submitted_once(form, user=request.user, name="code generation"):
                    job = services.code_generation_start(
                        campaign=campaign,
                        count=form.cleaned_data["count"],
                        pattern=form.cleaned_data["pattern"],
                        user=request.user,
                    )
            except ApplicationError as exc:
                form.add_error(None if exc.code in ("already_submitted", "form_expired") else "pattern", exc.message)
            else:
                self.message_user(request, _("Generating %(n)d codes (job %(job)s).") % {"n": job.count, "job": job.pk})
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": _("Generate codes for %(name)s") % {"name": campaign.name},
            "form": form,
        }
        return TemplateResponse(request, "admin/campaigns/campaign/generate_codes.html", context)


def services_alerts(tenant_ids):
    qs = CampaignAlert.objects.filter(acknowledged=False).select_related("campaign").order_by("-created_at")
    return qs if tenant_ids is None else qs.filter(tenant_id__in=tenant_ids)


class CodeResource(resources.ModelResource):
    """CSV columns: code, campaign (id), usage_limit, redeemed_count, expires_at, balance, member (external id).

    Usage counts are exported, never imported, and a balance is taken only for a new gift card code: both
    change through redemptions and rollbacks alone (locked), never by overwriting them from a file.
    """

    campaign = fields.Field(attribute="campaign", column_name="campaign", widget=ForeignKeyWidget(Campaign, "pk"))
    redeemed_count = fields.Field(attribute="redeemed_count", column_name="redeemed_count", readonly=True)
    member = fields.Field(
        attribute="member", column_name="member", widget=ForeignKeyWidget(Member, "external_id"), readonly=True
    )

    class Meta:
        model = Code
        fields = ("code", "campaign", "usage_limit", "redeemed_count", "expires_at", "balance", "member")
        export_order = fields
        import_id_fields = ("code",)
        skip_unchanged = True
        use_bulk = True
        batch_size = 5000

    def __init__(self, *args, tenant_ids=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant_ids = tenant_ids

    def before_import_row(self, row, **kwargs):
        row["code"] = str(row.get("code") or "").strip().upper()
        campaign = Campaign.objects.filter(pk=row.get("campaign")).only("tenant_id").first()
        if campaign is None or (self.tenant_ids is not None and campaign.tenant_id not in self.tenant_ids):
            raise ValueError(f"unknown campaign {row.get('campaign')!r}")

    def before_save_instance(self, instance, row, **kwargs):
        if instance.pk is not None:
            stored, redeemed = Code.objects.filter(pk=instance.pk).values_list("balance", "redeemed_count").get()
            if instance.balance != stored:
                raise ValueError(f"{instance.code}: the balance of an existing code changes only through redemptions")
            refusal = usage_limit_refusal(instance.usage_limit, redeemed)
            if refusal:
                raise ValueError(f"{instance.code}: usage_limit {refusal}")
        instance.tenant_id = instance.campaign.tenant_id
        if instance.balance is not None and instance.initial_balance is None:
            instance.initial_balance = instance.balance

    def get_instance(self, instance_loader, row):
        qs = Code.objects.filter(code=row.get("code"), campaign_id=row.get("campaign"))
        return qs.first()


def usage_limit_refusal(usage_limit, redeemed_count) -> str:
    """Why a code's usage limit cannot be `usage_limit` once it was redeemed `redeemed_count` times ('' if it can):
    the check constraint `code_redeemed_within_limit` would refuse it."""
    if usage_limit is not None and usage_limit < redeemed_count:
        return f"cannot be below the {redeemed_count} redemptions already made; set at least {redeemed_count}"
    return ""


class CodeAdminForm(forms.ModelForm):
    """The code's page: a usage limit below the redemptions already made is a form error. The count is read at
    validation, not locked; a redemption landing between that read and the save meets the check constraint
    (an error page, nothing saved), as any write past a limit does."""

    class Meta:
        model = Code
        fields = ("tenant", "campaign", "code", "is_shared", "usage_limit", "expires_at")

    def clean_usage_limit(self):
        usage_limit = self.cleaned_data.get("usage_limit")
        if self.instance.pk:
            redeemed = Code.objects.filter(pk=self.instance.pk).values_list("redeemed_count", flat=True).get()
            refusal = usage_limit_refusal(usage_limit, redeemed)
            if refusal:
                raise forms.ValidationError(refusal)
        return usage_limit


@admin.register(Code)
class CodeAdmin(TenantScopedAdminMixin, ImportExportModelAdmin):
    form = CodeAdminForm
    resource_classes = [CodeResource]
    list_display = ("code", "campaign", "member", "redeemed_count", "usage_limit", "balance", "expires_at")
    list_filter = ("tenant", "campaign__type", CodeCampaignFilter)
    list_select_related = ("campaign", "member")
    search_fields = ("code", "member__external_id")
    raw_id_fields = ("campaign", "member")
    readonly_fields = ("redeemed_count", "balance", "initial_balance", "member", "published_at", "created_at")
    show_full_result_count = False  # millions of codes: no COUNT(*) on every page

    def get_resource_kwargs(self, request, *args, **kwargs):
        kwargs = super().get_resource_kwargs(request, *args, **kwargs)
        if not request.user.is_superuser:
            kwargs["tenant_ids"] = set(tenants_for_user(request.user).values_list("pk", flat=True))
        return kwargs

    def has_delete_permission(self, request, obj=None):
        return False


class PublicationForm(forms.ModelForm):
    class Meta:
        model = Publication
        fields = ("campaign", "member", "channel")


@admin.register(Publication)
class PublicationAdmin(TenantScopedAdmin):
    form = PublicationForm
    list_display = ("code", "campaign", "member", "channel", "published_at")
    list_select_related = ("code", "campaign", "member")
    list_filter = ("tenant", "channel")
    search_fields = ("code__code", "member__external_id")
    raw_id_fields = ("campaign", "member")

    def get_readonly_fields(self, request, obj=None):
        return ("campaign", "member", "channel", "code", "published_at") if obj else ()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in a transaction as ModelAdmin does: the services own their (durable) transactions.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            publication, _created = services.publication_create(
                tenant=obj.campaign.tenant, campaign=obj.campaign, member=obj.member, channel=obj.channel
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            raise PermissionDenied(exc.message) from exc
        obj.__dict__.update({k: v for k, v in publication.__dict__.items() if not k.startswith("_")})
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CampaignAlert)
class CampaignAlertAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("created_at", "kind", "campaign", "message", "acknowledged")
    list_filter = ("kind", "acknowledged", "tenant")
    actions = ["acknowledge"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("campaigns.change_campaignalert")

    @admin.action(description=_("Mark as read"), permissions=["change"])
    def acknowledge(self, request, queryset):
        queryset.update(acknowledged=True)


@admin.register(CodeGenerationJob)
class CodeGenerationJobAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("campaign", "pattern", "count", "created", "status", "created_at", "finished_at")
    list_filter = ("status", "tenant")


from campaigns import admin_triggers  # noqa: E402 - the triggers' console, registered with this one
from campaigns.admin_distribution import distribution_links  # noqa: E402 - registers the distribution pages
