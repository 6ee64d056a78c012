"""Admin for integrations, API keys and webhooks.

A key created here is shown once, in a message, and never again (only its hash is stored). Webhook
endpoints show their recent deliveries; a delivery's attempts are listed on its page and it can be
re-sent. An endpoint disabled after failing deliveries is flagged on the list, with a warning on top.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from rest_framework_api_key.models import APIKey

from common.events import EVENT_TYPES
from integrations.keys import api_key_create, api_key_revoke
from integrations.models import (
    API_SCOPES,
    Event,
    Integration,
    IntegrationAPIKey,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.webhooks import webhook_delivery_resend, webhook_endpoint_disable, webhook_endpoint_enable
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin, tenants_for_user

# The library's own key model is unused here (keys belong to an integration, below) and its admin is not
# tenant-scoped: hide it so there is one "API keys" page, the scoped one.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(Integration)
class IntegrationAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant", "description", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name", "description")


class APIKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in API_SCOPES], widget=forms.CheckboxSelectMultiple, initial=list(API_SCOPES)
    )

    class Meta:
        model = IntegrationAPIKey
        fields = ("integration", "name", "scopes", "throttle_rate", "expiry_date")


@admin.register(IntegrationAPIKey)
class IntegrationAPIKeyAdmin(TenantScopedAdmin):
    form = APIKeyForm
    tenant_lookup = "integration__tenant"
    list_display = ("name", "prefix", "integration", "scopes_display", "created", "last_used_at", "revoked")
    list_filter = ("revoked", "integration__tenant")
    list_select_related = ("integration__tenant",)
    search_fields = ("name", "prefix", "integration__name")
    readonly_fields = ("prefix", "created", "last_used_at", "revoked")
    actions = ["revoke_keys"]

    @admin.display(description=_("scopes"))
    def scopes_display(self, obj):
        return ", ".join(obj.scopes or [])

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # a key's integration and scopes are fixed once issued: make a new key instead
            return self.readonly_fields + ("integration", "scopes")
        return self.readonly_fields

    def get_fields(self, request, obj=None):
        fields = ["integration", "name", "scopes", "throttle_rate", "expiry_date"]
        if obj is not None:
            fields += ["prefix", "created", "last_used_at", "revoked"]
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "integration" and not request.user.is_superuser:
            kwargs["queryset"] = Integration.objects.filter(tenant__in=tenants_for_user(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            integration=form.cleaned_data["integration"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expiry_date=form.cleaned_data.get("expiry_date"),
            throttle_rate=form.cleaned_data.get("throttle_rate", ""),
        )
        obj.pk = api_key.pk
        obj.id = api_key.pk
        obj.prefix = api_key.prefix
        obj.hashed_key = api_key.hashed_key
        obj.created = api_key.created
        obj._state.adding = False
        messages.warning(
            request,
            format_html(
                "The API key for {}: <code>{}</code> Copy it now: it is not stored and will not be shown again.",
                api_key.integration.name,
                raw_key,
            ),
        )

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the history of which key did what stays readable

    @admin.action(description=_("Revoke the selected keys (for good)"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset:
            if not api_key.revoked:
                api_key_revoke(api_key=api_key)
                count += 1
        self.message_user(request, ngettext("%d key revoked.", "%d keys revoked.", count) % count)


MANAGE_WEBHOOKS_PERMISSION = "integrations.change_webhookendpoint"


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(choices=[(t, t) for t in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ("tenant", "url", "description", "event_types", "secret")


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fk_name = "endpoint"
    fields = ("event", "status", "attempts", "last_status_code", "next_attempt_at", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)
    verbose_name_plural = _("deliveries (newest first)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "tenant", "state", "event_types_display", "disabled_at")
    list_filter = ("enabled", "tenant")
    search_fields = ("url", "description")
    readonly_fields = ("enabled", "disabled_at", "disabled_reason", "created_at")
    inlines = [WebhookDeliveryInline]
    actions = ["enable_endpoints", "disable_endpoints"]

    def get_fields(self, request, obj=None):
        """The signing secret only for who manages endpoints: a view-only role would read it off the page."""
        fields = super().get_fields(request, obj)
        if request.user.has_perm(MANAGE_WEBHOOKS_PERMISSION):
            return fields
        return [f for f in fields if f != "secret"]

    @admin.display(description=_("state"))
    def state(self, obj):
        if obj.enabled:
            return _("enabled")
        return format_html('<strong style="color:#ba2121">{}</strong>', _("disabled: ") + (obj.disabled_reason or ""))

    @admin.display(description=_("event types"))
    def event_types_display(self, obj):
        return ", ".join(obj.event_types or [])

    def changelist_view(self, request, extra_context=None):
        disabled = self.get_queryset(request).filter(enabled=False).exclude(disabled_reason="").count()
        if disabled:
            messages.warning(
                request,
                ngettext(
                    "%d webhook endpoint was disabled after failing deliveries: fix it, enable it and re-send.",
                    "%d webhook endpoints were disabled after failing deliveries: fix them, enable them and re-send.",
                    disabled,
                )
                % disabled,
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Enable the selected endpoints"), permissions=["change"])
    def enable_endpoints(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint)
        self.message_user(request, _("Enabled."))

    @admin.action(description=_("Disable the selected endpoints"), permissions=["change"])
    def disable_endpoints(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_disable(endpoint=endpoint, reason=f"disabled by {request.user}")
        self.message_user(request, _("Disabled."))


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error", "response_body")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("event", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at", "created_at")
    list_filter = ("status", "tenant")
    list_select_related = ("event", "endpoint")
    search_fields = ("endpoint__url",)
    readonly_fields = (
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "resent_from",
        "created_at",
        "succeeded_at",
    )
    fields = readonly_fields
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    def has_resend_permission(self, request):
        return request.user.has_perm("integrations.change_webhookendpoint")

    @admin.action(description=_("Re-send the selected deliveries"), permissions=["resend"])
    def resend(self, request, queryset):
        count = 0
        for delivery in queryset:
            webhook_delivery_resend(delivery=delivery)
            count += 1
        self.message_user(request, ngettext("%d delivery re-sent.", "%d deliveries re-sent.", count) % count)


@admin.register(Event)
class EventAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("public_id", "type", "tenant", "created_at")
    list_filter = ("type", "tenant")
    readonly_fields = ("id", "type", "tenant", "data", "created_at")
    fields = readonly_fields
