from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from guardian.admin import ReinforcedGuardedModelAdminMixin
from simple_history.admin import SimpleHistoryAdmin

from members.admin_history import HistoryAdminMixin
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin, tenants_for_user
from members.models import CONSENT_CHANNELS, ConsentChange, CustomEvent, Member, Segment, SegmentMember, Tenant
from members.selectors import segment_members
from members.services import MEMBER_FIELDS, member_fields_errors, member_upsert, tenant_set_frozen

CONSENT_HISTORY_ROWS = 20
CONSENT_FIELDS = tuple(f"{channel}_consent" for channel in CONSENT_CHANNELS)


@admin.register(Tenant)
class TenantAdmin(HistoryAdminMixin, ReinforcedGuardedModelAdminMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "currency", "time_zone", "frozen", "frozen_reason")
    list_filter = ("frozen", "currency")
    search_fields = ("slug", "name")
    # The kill switch moves only through the actions below (the service locks the row and records why).
    readonly_fields = ("frozen", "frozen_reason")
    actions = ["freeze", "unfreeze"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=tenants_for_user(request.user))

    @admin.action(description=_("Freeze: refuse every redemption and earning of the selected tenants"))
    def freeze(self, request, queryset):
        for tenant in queryset:
            tenant_set_frozen(tenant=tenant, frozen=True, reason=f"frozen in the admin by {request.user.username}")
        self.message_user(request, _("%(n)d tenant(s) frozen.") % {"n": len(queryset)}, messages.WARNING)

    @admin.action(description=_("Unfreeze the selected tenants"))
    def unfreeze(self, request, queryset):
        for tenant in queryset:
            tenant_set_frozen(tenant=tenant, frozen=False)
        self.message_user(request, _("%(n)d tenant(s) unfrozen.") % {"n": len(queryset)}, messages.SUCCESS)


class CustomEventInline(admin.TabularInline):
    model = CustomEvent
    extra = 0
    can_delete = False
    ordering = ("-occurred_at",)
    fields = ("name", "metadata", "occurred_at")
    readonly_fields = fields
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-occurred_at")


class MemberAdminForm(forms.ModelForm):
    """The service's own checks (country codes, email required for a new member) as form errors."""

    class Meta:
        model = Member
        # Consent is asked per channel; `marketing_consent` follows them (see `member_upsert`).
        fields = (
            "tenant",
            "external_id",
            *(name for name in MEMBER_FIELDS if name != "marketing_consent"),
            *CONSENT_FIELDS,
            "referred_by",
        )

    def clean(self):
        cleaned = super().clean()
        fields = {name: cleaned[name] for name in MEMBER_FIELDS if name in cleaned}
        for name, message in member_fields_errors(fields).items():
            if name in self.fields and name not in self.errors:
                self.add_error(name, message)
        if self.instance.pk is None and "email" in self.fields and not cleaned.get("email"):
            if "email" not in self.errors:
                self.add_error("email", _("An email is required for a new member."))
        return cleaned


@admin.register(Member)
class MemberAdmin(TenantScopedAdmin):
    """Members; the rewards app adds the accounts inline (this app does not import those above it).

    Saved through `member_upsert`, as the API saves them: the consent change is time-stamped, a new member
    gets its referral code and emits `member.created`. The external id (the touchpoints' key), the tenant
    and the referrer (set once) cannot be changed here.
    """

    form = MemberAdminForm
    list_display = ("external_id", "email", "name", "country", "tenant", "email_consent", "sms_consent", "created_at")
    list_filter = ("tenant", "email_consent", "sms_consent", "push_consent", "country")
    search_fields = ("external_id", "email", "name", "phone", "referral_code")
    readonly_fields = (
        "referral_code",
        "marketing_consent",
        "marketing_consent_changed_at",
        "email_consent_changed_at",
        "sms_consent_changed_at",
        "push_consent_changed_at",
        "consent_history",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("referred_by",)
    inlines = [CustomEventInline]

    @admin.display(description=_("consent history"))
    def consent_history(self, obj):
        """The latest consent changes, newest first: what the member agreed to, when, and through what."""
        if obj is None or obj.pk is None:
            return "-"
        changes = obj.consent_changes.select_related("staff_user").order_by("-changed_at", "-pk")[:CONSENT_HISTORY_ROWS]
        rows = format_html_join(
            "",
            "<li>{}: {} {} ({}{})</li>",
            (
                (
                    c.changed_at,
                    c.channel,
                    _("yes") if c.granted else _("no"),
                    c.get_source_display(),
                    f", {c.staff_user.get_username()}" if c.staff_user else "",
                )
                for c in changes
            ),
        )
        return format_html("<ul>{}</ul>", rows) if rows else "-"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in a transaction as ModelAdmin does: the service owns its (durable) transaction, and the
        # inlines here are read-only.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + ("tenant", "external_id", "referred_by") if obj is not None else fields

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name]
            for name in MEMBER_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        consent = {
            name.removesuffix("_consent"): form.cleaned_data[name]
            for name in CONSENT_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        if consent:
            fields["consent"] = consent
        referrer = form.cleaned_data.get("referred_by")
        if not change and referrer is not None:
            fields["referred_by"] = referrer.external_id
        member, _created = member_upsert(
            tenant=obj.tenant,
            external_id=obj.external_id,
            consent_source=ConsentChange.Source.ADMIN,
            staff_user=request.user,
            **fields,
        )
        obj.pk = member.pk
        obj._state.adding = False
        obj.refresh_from_db()


@admin.register(CustomEvent)
class CustomEventAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("name", "member", "occurred_at", "tenant")
    list_filter = ("name", "tenant")
    list_select_related = ("member", "tenant")
    search_fields = ("name", "member__external_id")


class SegmentMemberInline(admin.TabularInline):
    model = SegmentMember
    extra = 0
    raw_id_fields = ("member",)


@admin.register(Segment)
class SegmentAdmin(TenantScopedAdmin):
    list_display = ("code", "name", "kind", "tenant", "size")
    list_filter = ("kind", "tenant")
    search_fields = ("code", "name")
    inlines = [SegmentMemberInline]

    @admin.display(description=_("members"))
    def size(self, obj):

        return segment_members(obj).count()
