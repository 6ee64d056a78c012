"""Approval requests (four eyes): the list, and the page where a second person approves or rejects one."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedReadOnlyAdmin
from rewards.models import ApprovalRequest
from rewards.services.approvals import APPROVE_PERMISSION, approval_decide


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(TenantScopedReadOnlyAdmin):
    list_display = (
        "requested_at",
        "member",
        "kind",
        "change",
        "reason",
        "requested_by",
        "state",
        "decided_by",
        "decide",
    )
    list_filter = ("state", "kind", "tenant")
    list_select_related = ("member", "requested_by", "decided_by", "campaign")
    search_fields = ("member__external_id", "member__email", "reason")
    ordering = ("-requested_at",)

    @admin.display(description=_("decision"))
    def decide(self, obj):
        if obj.state != ApprovalRequest.State.PENDING:
            return obj.get_state_display()
        url = reverse("admin:rewards_approvalrequest_decide", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("approve or reject"))

    def get_urls(self):
        return [
            path(
                "<int:pk>/decide/", self.admin_site.admin_view(self.decide_view), name="rewards_approvalrequest_decide"
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request, pk: int):
        approval = get_object_or_404(
            self.get_queryset(request).select_related("member", "requested_by", "decided_by", "campaign"), pk=pk
        )
        may_decide = request.user.has_perm(APPROVE_PERMISSION) and approval.requested_by_id != request.user.pk
        form = DecisionForm(request.POST or None)
        if request.method == "POST":
            if not may_decide:
                raise PermissionDenied
            if form.is_valid():
                approve = "approve" in request.POST
                try:
                    approval = approval_decide(
                        request=approval,
                        approver=request.user,
                        approve=approve,
                        comment=form.cleaned_data["comment"],
                    )
                except ApplicationError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    requester = approval.requested_by.get_username()
                    verdict = "Approved" if approve else "Rejected"
                    self.log_change(
                        request, approval.member, f"{verdict} request {approval.pk} of {requester}: {approval.change}"
                    )
                    level = messages.ERROR if approval.state == ApprovalRequest.State.FAILED else messages.SUCCESS
                    text = approval.get_state_display()
                    if approval.error:
                        text = f"{text}: {approval.error}"
                    self.message_user(request, text, level)
                return HttpResponseRedirect(reverse("admin:rewards_approvalrequest_decide", args=[approval.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": approval,
            "title": _("Approval request %(id)s") % {"id": approval.pk},
            "form": form,
            "may_decide": may_decide and approval.state == ApprovalRequest.State.PENDING,
        }
        return TemplateResponse(request, "admin/rewards/approvalrequest/decide.html", context)
