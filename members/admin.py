import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from guardian.admin import ReinforcedGuardedModelAdminMixin
from guardian.shortcuts import get_objects_for_user
from simple_history.admin import SimpleHistoryAdmin

from common.errors import ApplicationError
from members.admin_history import HistoryAdminMixin
from members.admin_tenancy import (
    TenantScopedAdmin,
    TenantScopedAdminMixin,
    TenantScopedReadOnlyAdmin,
    tenants_for_user,
)
from members.models import (
    CONSENT_CHANNELS,
    ConsentChange,
    CustomEvent,
    ErasureRequest,
    Member,
    Segment,
    SegmentMember,
    Tenant,
    TermsVersion,
)
from members.selectors import segment_members
from members.services import (
    MEMBER_FIELDS,
    member_erase,
    member_fields_errors,
    member_upsert,
    tenant_set_frozen,
    terms_version_save,
)

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
        if self.instance.pk is not None and self.instance.status == Member.Status.ERASED:
            raise forms.ValidationError(_("This member's data was erased: there is nothing to change."))
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
        "terms_accepted",
        "erasure",
        "status",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("referred_by",)
    inlines = [CustomEventInline]

    @admin.display(description=_("terms accepted"))
    def terms_accepted(self, obj):
        """Every version of the program's terms the member accepted, newest first (append-only records)."""
        if obj is None or obj.pk is None:
            return "-"
        rows = format_html_join(
            "",
            "<li>{}: {}</li>",
            (
                (_("version %(v)s") % {"v": a.terms.version}, a.accepted_at)
                for a in obj.terms_acceptances.select_related("terms").order_by("-accepted_at", "-pk")
            ),
        )
        return format_html("<ul>{}</ul>", rows) if rows else _("none")

    @admin.display(description=_("erasure"))
    def erasure(self, obj):
        """The member's erasure requests, with a link to each (where staff carry it out)."""
        if obj is None or obj.pk is None:
            return "-"
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {}</li>',
            (
                (reverse("admin:members_erasurerequest_change", args=[r.pk]), r.get_state_display(), r.requested_at)
                for r in obj.erasure_requests.order_by("-requested_at", "-pk")
            ),
        )
        return format_html("<ul>{}</ul>", rows) if rows else _("none")

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


class TermsVersionForm(forms.ModelForm):
    class Meta:
        model = TermsVersion
        fields = ("tenant", "version", "text", "published_at")


@admin.register(TermsVersion)
class TermsVersionAdmin(TenantScopedAdminMixin, ReinforcedGuardedModelAdminMixin, admin.ModelAdmin):
    """The program's terms, one row per version: a new text is added as a new version, and a published version
    is read-only (members accepted that very text); the current one is the latest published."""

    form = TermsVersionForm
    list_display = ("version", "tenant", "published_at", "acceptances_count", "created_at")
    list_filter = ("tenant",)
    ordering = ("tenant", "-published_at", "-pk")
    search_fields = ("version",)

    @admin.display(description=_("acceptances"))
    def acceptances_count(self, obj):
        return obj.acceptances.count()

    def _published(self, obj) -> bool:
        return obj is not None and obj.published_at is not None and obj.published_at <= timezone.now()

    def has_change_permission(self, request, obj=None):
        return not self._published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._published(obj) and super().has_delete_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._changeform_view(request, object_id, form_url, extra_context)  # the service's transaction

    def save_model(self, request, obj, form, change):
        try:
            terms_version_save(terms=obj)
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc


class ErasureCarryOutForm(forms.Form):
    confirm = forms.BooleanField(label=_("Erase this member's personal data now (it cannot be undone)"))


CARRY_OUT_PERMISSION = "members.carry_out_erasurerequest"


@admin.register(ErasureRequest)
class ErasureRequestAdmin(TenantScopedReadOnlyAdmin):
    """Members' erasure requests: staff carry them out (or the grace period runs out and a task does).

    Carrying out needs `members.carry_out_erasurerequest`, globally (the Admin role) or on that request
    (guardian), and the request in one of the user's tenants: the list action and the per-request page check
    each request, so a direct POST is refused like the hidden button."""

    list_display = ("member", "tenant", "state", "requested_at", "due_at", "carried_out_at", "carried_out_by")
    list_filter = ("state", "tenant")
    list_select_related = ("member", "tenant", "carried_out_by")
    search_fields = ("member__external_id",)
    readonly_fields = ("carry_out_link",)
    actions = ["carry_out"]

    @admin.display(description=_("due"))
    def due_at(self, obj):
        return obj.requested_at + dt.timedelta(days=settings.ERASURE_GRACE_DAYS)

    @admin.display(description=_("carry out"))
    def carry_out_link(self, obj):
        if obj.state != ErasureRequest.State.REQUESTED:
            return obj.get_state_display()
        return format_html(
            '<a class="button" href="{}">{}</a>',
            reverse("admin:members_erasurerequest_carry_out", args=[obj.pk]),
            _("Carry out the erasure"),
        )

    def may_carry_out(self, request, obj) -> bool:
        user = request.user
        return user.has_perm(CARRY_OUT_PERMISSION) or user.has_perm(CARRY_OUT_PERMISSION, obj)

    def has_carry_out_permission(self, request, obj=None):
        """The action is offered to whoever may carry out some request; each one is checked again."""
        if obj is not None:
            return self.may_carry_out(request, obj)
        return (
            request.user.has_perm(CARRY_OUT_PERMISSION)
            or get_objects_for_user(
                request.user, CARRY_OUT_PERMISSION, klass=ErasureRequest, accept_global_perms=False
            ).exists()
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/carry-out/",
                self.admin_site.admin_view(self.carry_out_view),
                name="members_erasurerequest_carry_out",
            ),
            *super().get_urls(),
        ]

    @admin.action(description=_("Carry out the selected erasure requests"), permissions=["carry_out"])
    def carry_out(self, request, queryset):
        done = refused = 0
        for erasure_request in queryset.select_related("member").filter(state=ErasureRequest.State.REQUESTED):
            if not self.may_carry_out(request, erasure_request):
                refused += 1
                continue
            _member, erased = member_erase(member=erasure_request.member, staff_user=request.user)
            done += erased
        self.message_user(request, _("%(n)d member(s) erased.") % {"n": done}, messages.SUCCESS)
        if refused:
            self.message_user(
                request, _("%(n)d request(s) refused: you may not carry them out.") % {"n": refused}, messages.ERROR
            )

    def carry_out_view(self, request, pk):
        erasure_request = get_object_or_404(self.get_queryset(request).select_related("member"), pk=pk)
        if not self.may_carry_out(request, erasure_request):
            raise PermissionDenied
        change_url = reverse("admin:members_erasurerequest_change", args=[erasure_request.pk])
        if erasure_request.state != ErasureRequest.State.REQUESTED:
            self.message_user(request, _("This request is not open any more."), messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = ErasureCarryOutForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            member_erase(member=erasure_request.member, staff_user=request.user)
            self.message_user(request, _("The member's personal data was erased."), messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": erasure_request,
            "title": _("Carry out erasure request %(id)s") % {"id": erasure_request.pk},
            "form": form,
        }
        return TemplateResponse(request, "admin/members/erasurerequest/carry_out.html", context)
