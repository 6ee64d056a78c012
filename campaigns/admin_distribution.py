"""The distribution console: send a campaign's codes to a segment (with a progress page), export a campaign's
publications and codes as CSV, and the campaign's reminder sequence. A client of `campaigns.distribution` and
`campaigns.reminders`.

Rights, checked on every request (a direct POST is refused exactly as the hidden button): the campaign must be
one the campaign console shows the user (tenant scope, and its per-object rights), plus
`campaigns.start_segmentsend` to start, cancel or resume a send (Marketers; not Junior marketers, not Support),
and `campaigns.export_publications` to export (the file holds members' emails).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.distribution import (
    campaign_export_rows,
    segment_send_cancel,
    segment_send_progress,
    segment_send_resume,
    segment_send_start,
    segment_sends_with_progress,
)
from campaigns.models import Campaign, ReminderDelivery, ReminderStep, SegmentSend
from campaigns.reminders import reminder_step_errors, reminder_step_save, reminders_sent_count
from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedAdmin, TenantScopedAdminMixin
from members.models import Segment

START_PERMISSION = "campaigns.start_segmentsend"
EXPORT_PERMISSION = "campaigns.export_publications"


def distribution_links(campaign: Campaign) -> list[tuple[str, str]]:
    """(label, address) of the campaign's distribution pages, for the campaign page (one count query)."""
    sends = reverse("admin:campaigns_segmentsend_changelist") + f"?campaign__id__exact={campaign.pk}"
    steps = reverse("admin:campaigns_reminderstep_changelist") + f"?campaign__id__exact={campaign.pk}"
    return [
        (_("Send to a segment"), reverse("admin:campaigns_segmentsend_start", args=[campaign.pk])),
        (_("Sends"), sends),
        (_("Export publications (CSV)"), reverse("admin:campaigns_segmentsend_export", args=[campaign.pk])),
        (_("Reminders: %(n)d sent") % {"n": reminders_sent_count(campaign)}, steps),
    ]


def _campaign_admin():
    return admin.site._registry[Campaign]


def campaign_for(request, pk: int, *, change: bool) -> Campaign:
    """The campaign if the campaign console would let this user see (or change) it; 404 or 403 otherwise."""
    campaign_admin = _campaign_admin()
    campaign = get_object_or_404(campaign_admin.get_queryset(request).select_related("tenant"), pk=pk)
    allowed = (
        campaign_admin.has_change_permission(request, campaign)
        if change
        else campaign_admin.has_view_permission(request, campaign)
    )
    if not allowed:
        raise PermissionDenied
    return campaign


class SegmentSendForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.none())
    message = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Shown above the code in the email; the campaign's description follows it."),
    )
    confirm = forms.BooleanField(label=_("Email a code of this campaign to every consenting member of the segment"))

    def __init__(self, *args, segments=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = segments


@admin.register(SegmentSend)
class SegmentSendAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The sends, with their progress; started from the campaign page, never added or edited here."""

    list_display = ("campaign", "segment", "status", "n_sent", "n_skipped", "n_failed", "n_left", "created_at")
    list_filter = ("status", "tenant", "campaign")
    list_select_related = ("campaign", "segment", "tenant")
    search_fields = ("campaign__name", "segment__name")

    def get_queryset(self, request):
        return segment_sends_with_progress(super().get_queryset(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("sent"))
    def n_sent(self, obj):
        return obj.n_sent

    @admin.display(description=_("skipped (consent / holds a code)"))
    def n_skipped(self, obj):
        return f"{obj.n_skipped_consent} / {obj.n_skipped_held}"

    @admin.display(description=_("failed"))
    def n_failed(self, obj):
        return obj.n_failed

    @admin.display(description=_("not reached yet"))
    def n_left(self, obj):
        return obj.n_pending + obj.n_claimed

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("campaign/<int:pk>/start/", view(self.start_view), name="campaigns_segmentsend_start"),
            path("campaign/<int:pk>/export.csv", view(self.export_view), name="campaigns_segmentsend_export"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="campaigns_segmentsend_cancel"),
            path("<int:pk>/resume/", view(self.resume_view), name="campaigns_segmentsend_resume"),
            *super().get_urls(),
        ]

    def _context(self, request, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, **extra}

    # The change page is the progress page (read-only, refreshing while the send runs).
    def change_view(self, request, object_id, form_url="", extra_context=None):
        send = get_object_or_404(self.get_queryset(request).select_related("campaign", "segment"), pk=object_id)
        campaign_for(request, send.campaign_id, change=False)
        can_steer = request.user.has_perm(START_PERMISSION)
        context = self._context(
            request,
            title=_("Send of %(campaign)s to %(segment)s") % {"campaign": send.campaign, "segment": send.segment},
            send=send,
            progress=segment_send_progress(send),
            can_cancel=can_steer and send.is_open,
            can_resume=can_steer and send.status == SegmentSend.Status.STOPPED,
        )
        return TemplateResponse(request, "admin/campaigns/segmentsend/progress.html", context)

    def start_view(self, request, pk: int):
        campaign = campaign_for(request, pk, change=True)
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        segments = Segment.objects.for_tenant(campaign.tenant_id).order_by("name")
        form = SegmentSendForm(request.POST or None, segments=segments)
        if request.method == "POST" and form.is_valid():
            try:
                send = segment_send_start(
                    campaign=campaign,
                    segment=form.cleaned_data["segment"],
                    message=form.cleaned_data["message"],
                    user=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.log_addition(request, send, f"Send of {campaign.name} to {send.segment.name} started")
                self.message_user(request, _("The send started: its progress is below."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:campaigns_segmentsend_change", args=[send.pk]))
        context = self._context(
            request, title=_("Send %(name)s to a segment") % {"name": campaign.name}, original=campaign, form=form
        )
        return TemplateResponse(request, "admin/campaigns/segmentsend/start.html", context)

    def _steer(self, request, pk: int):
        if request.method != "POST":
            return None, HttpResponseNotAllowed(["POST"])
        send = get_object_or_404(self.get_queryset(request), pk=pk)
        campaign_for(request, send.campaign_id, change=True)
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        return send, None

    def cancel_view(self, request, pk: int):
        send, refused = self._steer(request, pk)
        if refused:
            return refused
        if segment_send_cancel(send=send):
            self.log_change(request, send, "Cancelled")
            self.message_user(request, _("Send cancelled: members not reached yet get nothing."), messages.WARNING)
        else:
            self.message_user(request, _("This send was no longer running."), messages.INFO)
        return HttpResponseRedirect(reverse("admin:campaigns_segmentsend_change", args=[send.pk]))

    def resume_view(self, request, pk: int):
        send, refused = self._steer(request, pk)
        if refused:
            return refused
        if segment_send_resume(send=send):
            self.log_change(request, send, "Resumed")
            self.message_user(request, _("Send resumed for the members not reached yet."), messages.SUCCESS)
        else:
            self.message_user(request, _("Only a stopped send can be resumed."), messages.INFO)
        return HttpResponseRedirect(reverse("admin:campaigns_segmentsend_change", args=[send.pk]))

    def export_view(self, request, pk: int):
        """The campaign's publications (`?what=codes`: its codes) as CSV, streamed from the database."""
        campaign = campaign_for(request, pk, change=False)
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        what = "codes" if request.GET.get("what") == "codes" else "publications"
        consenting_only = request.GET.get("all") != "1"
        rows = campaign_export_rows(campaign, what=what, consenting_only=consenting_only)
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-{what}-{stamp}.csv"'
        return response


class ReminderStepForm(forms.ModelForm):
    """The service's own checks (day range, one step per day, a text) as form errors."""

    class Meta:
        model = ReminderStep
        fields = ("campaign", "days_after", "subject", "message", "active")

    def clean(self):
        cleaned = super().clean()
        campaign = cleaned.get("campaign") or getattr(self.instance, "campaign", None)
        if campaign is None or self.errors:
            return cleaned
        problems = reminder_step_errors(
            campaign=campaign,
            days_after=cleaned.get("days_after"),
            message=cleaned.get("message", ""),
            subject=cleaned.get("subject", ""),
            step=self.instance,
        )
        for name, message in problems.items():
            self.add_error(name if name in self.fields else None, message)
        return cleaned


@admin.register(ReminderStep)
class ReminderStepAdmin(TenantScopedAdmin):
    """A campaign's follow-ups; saved through `reminder_step_save`. Steps are switched off, never deleted (the
    reminders they sent stay on the members' pages)."""

    form = ReminderStepForm
    list_display = ("campaign", "days_after", "subject", "active", "sent", "stopped")
    list_filter = ("active", "tenant", "campaign")
    list_select_related = ("campaign", "tenant")
    search_fields = ("campaign__name", "subject")

    def get_queryset(self, request):
        state = ReminderDelivery.State
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_sent=Count("deliveries", filter=Q(deliveries__state=state.SENT)),
                n_stopped=Count("deliveries", filter=Q(deliveries__state=state.STOPPED)),
            )
        )

    @admin.display(description=_("sent"))
    def sent(self, obj):
        return obj.n_sent

    @admin.display(description=_("stopped (redeemed, expired, no consent)"))
    def stopped(self, obj):
        return obj.n_stopped

    def get_readonly_fields(self, request, obj=None):
        return ("campaign",) if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if allowed and obj is not None:
            return _campaign_admin().has_change_permission(request, obj.campaign)
        return allowed

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in a transaction as ModelAdmin does: the service owns its (durable) transaction.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        campaign = obj.campaign if change else form.cleaned_data["campaign"]
        if not _campaign_admin().has_change_permission(request, campaign):
            raise PermissionDenied
        step = reminder_step_save(
            campaign=campaign,
            days_after=form.cleaned_data["days_after"],
            message=form.cleaned_data["message"],
            subject=form.cleaned_data.get("subject", ""),
            active=form.cleaned_data.get("active", True),
            step=obj if change else None,
            user=request.user,
        )
        obj.pk = step.pk
        obj._state.adding = False
        obj.refresh_from_db()
