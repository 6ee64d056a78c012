"""The support console's entry: one search box for a member (or a code), and the member's whole story.

The story reads members, the ledger, campaigns and rewards, so it extends the member console from here (an admin
page that composes several apps lives in the highest app it needs): `MemberAdmin` below replaces the one
`members.admin` registers, adding the search and story pages and their links.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign
from campaigns.selectors import campaigns_usable_by
from campaigns.services import publication_resend
from common.errors import ApplicationError
from loyalty.admin.ledger import ADJUST_PERMISSION, AdjustPointsForm
from loyalty.ledger.adjustments import staff_adjustment_limit, staff_adjustment_used
from loyalty.models import LedgerEntry, Tier
from loyalty.services.tiers import tier_assign
from members import admin as members_admin
from members.admin_tenancy import tenants_for_user
from members.form_once import one_time, submitted_once
from members.models import Member
from members.services import member_set_status
from rewards.admin.redemption import APPLY_PERMISSION, ROLLBACK_PERMISSION
from rewards.member_story import LedgerFilter, member_search, member_story
from rewards.services.approvals import adjustment_apply_or_request, apology_give_or_request


class LedgerFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", _("all kinds")), *LedgerEntry.Kind.choices], required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


PUBLISH_PERMISSION = "campaigns.add_publication"


class ApologyForm(forms.Form):
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.none(), help_text=_("Only the campaigns you may use are listed.")
    )
    reason = forms.CharField(max_length=300, help_text=_("Why the member gets it (kept with your name)."))
    confirm = forms.BooleanField(label=_("Give this member a code of the campaign"))

    def __init__(self, *args, campaigns=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["campaign"].queryset = campaigns


ASSIGN_TIER_PERMISSION = "loyalty.assign_tier"


class TierForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.none())
    protected_until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Optional: no downgrade before this time (the tenant's time zone)."),
    )
    reason = forms.CharField(max_length=80, help_text=_("Kept with the tier move and your name."))

    def __init__(self, *args, tiers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].queryset = tiers


class StatusForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text=_("Kept in the member's history with your name."))
    confirm = forms.BooleanField()


def _page_links(request, param: str, page) -> dict[str, str]:
    """Previous/next links of one section, keeping the other sections' pages and the ledger filter."""
    links = {}
    for label, has, number in (
        ("previous", page.has_previous, page.number - 1),
        ("next", page.has_next, page.number + 1),
    ):
        if has():
            query = request.GET.copy()
            query[param] = number
            links[label] = f"?{query.urlencode()}#{param.removesuffix('_page')}"
    return links


class MemberAdmin(members_admin.MemberAdmin):
    list_display = (*members_admin.MemberAdmin.list_display, "story_link")
    readonly_fields = (*members_admin.MemberAdmin.readonly_fields, "story_link")

    @admin.display(description=_("support"))
    def story_link(self, obj):
        if obj.pk is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:members_member_story", args=[obj.pk]), _("story"))

    def get_urls(self):
        return [
            path("find/", self.admin_site.admin_view(self.find_view), name="members_member_find"),
            path("<int:pk>/story/", self.admin_site.admin_view(self.story_view), name="members_member_story"),
            path("<int:pk>/apology/", self.admin_site.admin_view(self.apology_view), name="members_member_apology"),
            path("<int:pk>/status/", self.admin_site.admin_view(self.status_view), name="members_member_status"),
            path("<int:pk>/tier/", self.admin_site.admin_view(self.tier_view), name="members_member_tier"),
            path("<int:pk>/adjust/", self.admin_site.admin_view(self.adjust_view), name="members_member_adjust"),
            path(
                "<int:pk>/resend/<int:publication_id>/",
                self.admin_site.admin_view(self.resend_view),
                name="members_member_resend",
            ),
            *super().get_urls(),
        ]

    def find_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("q", "")
        result = member_search(tenants=tenants_for_user(request.user), query=query)
        return self._page(
            request,
            "find",
            _("Find a member"),
            query=query,
            result=result,
        )

    def _page(self, request, template: str, title, member: Member | None = None, **context):
        """An admin page of the console: the site's context, the member it is about, and its own."""
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **context}
        if member is not None:
            context["original"] = member
        return TemplateResponse(request, f"admin/members/member/{template}.html", context)

    def _member(self, request, pk: int) -> Member:
        member = self.get_queryset(request).select_related("tenant", "referred_by").filter(pk=pk).first()
        if member is None:
            raise Http404
        if not self.has_view_permission(request, member):
            raise PermissionDenied
        return member

    def apology_view(self, request, pk: int):
        member = self._member(request, pk)
        if not request.user.has_perm(PUBLISH_PERMISSION):
            raise PermissionDenied
        campaigns = campaigns_usable_by(request.user, member.tenant).order_by("name")
        form = one_time(ApologyForm(request.POST or None, campaigns=campaigns))
        if request.method == "POST" and form.is_valid():
            campaign, reason = form.cleaned_data["campaign"], form.cleaned_data["reason"]
            try:
                with submitted_once(form, user=request.user, name="apology coupon"):
                    publication, created, emailed, approval = apology_give_or_request(
                        campaign=campaign, member=member, staff_user=request.user, reason=reason
                    )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if approval is not None:
                    asked = f"Asked for approval of an apology coupon of {campaign.name}: {reason}"
                    self.log_change(request, member, asked)
                    self.message_user(
                        request,
                        _("You have given today's apology coupons: a second person will approve or reject this one."),
                        messages.WARNING,
                    )
                    return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]))
                code = publication.code.code
                self.log_change(request, member, f"Apology coupon {code} of {campaign.name}: {reason}")
                if created:
                    text = _("Code %(code)s given.") % {"code": code}
                else:
                    text = _("The member already held %(code)s of this campaign: given again.") % {"code": code}
                if emailed:
                    text = f"{text} {_('It is on its way by email.')}"
                self.message_user(request, text, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]) + "#codes")
        return self._page(
            request,
            "apology",
            _("Apology coupon for %(member)s") % {"member": member},
            member,
            form=form,
            consents=bool(member.email and member.email_consent),
        )

    def adjust_view(self, request, pk: int):
        """Adjust points within the agent's limits; above them the change waits for a second person."""
        member = self._member(request, pk)
        if not request.user.has_perm(ADJUST_PERMISSION):
            raise PermissionDenied
        form = one_time(AdjustPointsForm(request.POST or None))
        if request.method == "POST" and form.is_valid():
            points, reason = form.cleaned_data["points"], form.cleaned_data["reason"]
            try:
                with submitted_once(form, user=request.user, name="points adjustment"):
                    entry, approval = adjustment_apply_or_request(
                        member=member, points=points, reason=reason, staff_user=request.user
                    )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if approval is not None:
                    self.log_change(request, member, f"Asked for approval of {points:+d} points: {reason}")
                    self.message_user(
                        request,
                        _("%(points)+d points is above your limit: a second person will approve or reject it.")
                        % {"points": points},
                        messages.WARNING,
                    )
                else:
                    self.log_change(request, member, f"Adjusted {points:+d} points: {reason}")
                    self.message_user(
                        request,
                        _("Adjusted by %(points)+d points; the balance is now %(balance)d.")
                        % {"points": entry.points, "balance": entry.balance_after},
                    )
                return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]) + "#points")
        limit = staff_adjustment_limit(request.user)
        return self._page(
            request,
            "adjust",
            _("Adjust the points of %(member)s") % {"member": member},
            member,
            form=form,
            limit=limit,
            used_today=staff_adjustment_used(request.user, timezone.localdate()) if limit else 0,
        )

    def resend_view(self, request, pk: int, publication_id: int):
        """Email a code the member holds again (POST only; consent is checked when the email is sent)."""
        member = self._member(request, pk)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]) + "#codes")
        if not request.user.has_perm(PUBLISH_PERMISSION):
            raise PermissionDenied
        publication = member.publications.select_related("code").filter(pk=publication_id).first()
        if publication is None:
            raise Http404
        if not (member.email and member.email_consent):
            self.message_user(request, _("The member does not consent to email: nothing sent."), messages.WARNING)
        else:
            publication_resend(publication=publication)
            self.log_change(request, member, f"Code {publication.code.code} emailed again")
            self.message_user(request, _("Code %(code)s emailed again.") % {"code": publication.code.code})
        return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]) + "#codes")

    def tier_view(self, request, pk: int):
        member = self._member(request, pk)
        if not request.user.has_perm(ASSIGN_TIER_PERMISSION):
            raise PermissionDenied
        tiers = Tier.objects.filter(tenant_id=member.tenant_id, program__active=True).select_related("program")
        form = TierForm(request.POST or None, tiers=tiers)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            until = data["protected_until"]
            if until is not None and timezone.is_naive(until):
                until = timezone.make_aware(until, member.tenant.tz)
            try:
                tier_assign(
                    member=member,
                    tier=data["tier"],
                    reason=data["reason"],
                    staff_user=request.user,
                    protected_until=until,
                )
            except ApplicationError as exc:
                for field, problems in exc.details.items():
                    form.add_error(field if field in form.fields else None, problems)
                if not exc.details:
                    form.add_error(None, exc.message)
            else:
                protection = f", protected until {until:%Y-%m-%d %H:%M}" if until else ""
                self.log_change(request, member, f"Tier set to {data['tier'].name}{protection}: {data['reason']}")
                self.message_user(request, _("Tier set to %(tier)s.") % {"tier": data["tier"].name})
                return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]) + "#points")
        return self._page(
            request,
            "tier",
            _("Set the tier of %(member)s") % {"member": member},
            member,
            form=form,
        )

    def status_view(self, request, pk: int):
        """Suspend or reactivate (whichever the member's state calls for), with a reason."""
        member = self._member(request, pk)
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        suspend = not member.is_suspended
        form = StatusForm(request.POST or None)
        form.fields["confirm"].label = (
            _("Suspend: refuse their codes and points, earn nothing") if suspend else _("Reactivate the member")
        )
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                member_set_status(member=member, suspended=suspend, reason=reason, staff_user=request.user)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                verb = "Suspended" if suspend else "Reactivated"
                self.log_change(request, member, f"{verb}: {reason}")
                self.message_user(request, _("Member suspended.") if suspend else _("Member reactivated."))
                return HttpResponseRedirect(reverse("admin:members_member_story", args=[member.pk]))
        return self._page(
            request,
            "status",
            (_("Suspend %(member)s") if suspend else _("Reactivate %(member)s")) % {"member": member},
            member,
            form=form,
            suspend=suspend,
        )

    def story_view(self, request, pk: int):
        member = self._member(request, pk)
        form = LedgerFilterForm(request.GET or None)
        filters = LedgerFilter(**form.cleaned_data) if form.is_valid() else LedgerFilter()
        pages = {key.removesuffix("_page"): value for key, value in request.GET.items() if key.endswith("_page")}
        story = member_story(member, pages=pages, filters=filters)
        for name, page in story["pages"].items():
            page.links = _page_links(request, f"{name}_page", page)
        user = request.user
        return self._page(
            request,
            "story",
            _("%(member)s: the whole story") % {"member": member.name or member.email or member.external_id},
            member,
            story=story,
            ledger_form=form,
            can_adjust=user.has_perm(ADJUST_PERMISSION),
            can_apply=user.has_perm(APPLY_PERMISSION),
            can_rollback=user.has_perm(ROLLBACK_PERMISSION),
            can_change=self.has_change_permission(request, member),
            can_give_codes=user.has_perm(PUBLISH_PERMISSION),
            can_assign_tier=user.has_perm(ASSIGN_TIER_PERMISSION),
            can_resend=user.has_perm(PUBLISH_PERMISSION) and bool(member.email and member.email_consent),
        )


admin.site.unregister(Member)
admin.site.register(Member, MemberAdmin)
