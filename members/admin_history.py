"""The admin's history pages, for every configuration model (through `TenantScopedAdmin`):

- the change form asks for an optional "reason for this change", stored as the version's change reason;
- the history list shows, per version, each changed field old -> new with the user and the reason
  (django-simple-history's own list), and a version's page what changed from the version before it and what
  differs from the current one;
- a version is never restored by saving its historical row (simple-history's revert is turned off, and a
  direct POST to a version's page is refused): an admin that defines `history_revert` offers a "Revert to this
  version" button, a confirmation page with a reason, and calls its service. The button and the POST are
  refused alike without change rights on that object;
- versions are tenant-scoped like the rows: a version of another tenant's record is not found.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from common.history import REASON_MAX_LENGTH, change_reason, set_change_reason, version_changes

REASON_FIELD = "history_change_reason"


class RevertForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for this revert"), max_length=REASON_MAX_LENGTH - 20, widget=forms.TextInput(attrs={"size": 80})
    )


class HistoryAdminMixin:
    object_history_form_template = "admin/history/object_history_form.html"
    # Fields a revert never touches, shown apart on the confirmation page (counters, usage, budgets spent).
    history_revert_keeps: tuple[str, ...] = ()

    # `history_revert(request, obj, record, reason)`: the service call that puts `obj` back to `record`.
    history_revert = None

    # --- the reason field -------------------------------------------------------------------------------

    def _reason_wanted(self, request, obj) -> bool:
        if getattr(request, "_history_version_page", False):
            return False
        return self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != REASON_FIELD]})
            for name, opts in super().get_fieldsets(request, obj)
        ]
        if self._reason_wanted(request, obj):
            fieldsets.append((_("Reason for this change"), {"fields": [REASON_FIELD]}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        fields = kwargs["fields"] if "fields" in kwargs else flatten_fieldsets(self.get_fieldsets(request, obj))
        if fields:
            kwargs["fields"] = [f for f in fields if f != REASON_FIELD]
        else:
            kwargs["fields"] = fields
        form = super().get_form(request, obj, change=change, **kwargs)
        reason = forms.CharField(
            label=_("Reason for this change"),
            required=False,
            max_length=REASON_MAX_LENGTH,
            help_text=_("Optional; kept with this version in the history."),
            widget=forms.TextInput(attrs={"size": 80}),
        )
        return type(form.__name__, (form,), {REASON_FIELD: reason})

    def get_readonly_fields(self, request, obj=None):
        return [f for f in super().get_readonly_fields(request, obj) if f != REASON_FIELD]

    def _changeform_view(self, request, object_id, form_url, extra_context):
        with change_reason(""):
            return super()._changeform_view(request, object_id, form_url, extra_context)

    def save_form(self, request, form, change):
        set_change_reason(form.cleaned_data.get(REASON_FIELD, ""))
        return super().save_form(request, form, change)

    # --- versions -------------------------------------------------------------------------------------

    def revert_disabled(self, request, obj=None):
        return True  # simple-history's own revert (saving the historical row) is never offered

    def has_revert_permission(self, request, obj) -> bool:
        return self.history_revert is not None and self.has_change_permission(request, obj)

    def _scoped_object(self, request, object_id):
        """The record, within the user's tenants; 404 for another tenant's (or a deleted one's, for non-superusers)."""
        obj = self.get_queryset(request).filter(pk=unquote(object_id)).first()
        if obj is None and not request.user.is_superuser:
            raise Http404
        return obj

    def history_view(self, request, object_id, extra_context=None):
        self._scoped_object(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied  # a version is restored only through the revert page (its service)
        obj = self._scoped_object(request, object_id)
        request._history_version_page = True
        history = self.model.history
        record = get_object_or_404(history.filter(**{self.model._meta.pk.attname: unquote(object_id)}), pk=version_id)
        previous = record.prev_record
        latest = history.filter(**{self.model._meta.pk.attname: record.instance.pk}).latest()
        context = {
            "version": record,
            "changes_from_previous": version_changes(record, previous) if previous else None,
            "changes_to_current": version_changes(latest, record) if latest.pk != record.pk else None,
            "revert_url": (
                reverse(self._revert_url_name(), args=[record.instance.pk, record.pk])
                if obj is not None and latest.pk != record.pk and self.has_revert_permission(request, obj)
                else None
            ),
            **(extra_context or {}),
        }
        return super().history_form_view(request, object_id, version_id, context)

    def _revert_url_name(self) -> str:
        opts = self.model._meta
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_history_revert"

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/history/<int:version_id>/revert/",
                self.admin_site.admin_view(self.history_revert_view),
                name=f"{opts.app_label}_{opts.model_name}_history_revert",
            ),
            *super().get_urls(),
        ]

    def history_revert_view(self, request, object_id, version_id):
        """Confirm, then revert `obj` to version `version_id` through the admin's `history_revert` service."""
        obj = self._scoped_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_revert_permission(request, obj):
            raise PermissionDenied
        record = get_object_or_404(self.model.history.filter(**{self.model._meta.pk.attname: obj.pk}), pk=version_id)
        latest = self.model.history.filter(**{self.model._meta.pk.attname: obj.pk}).latest()
        form = RevertForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                self.history_revert(request, obj, record, form.cleaned_data["reason"])
            except ApplicationError as exc:
                details = "; ".join(f"{k}: {v}" for k, v in (exc.details or {}).items())
                form.add_error(None, f"{exc.message} {details}".strip())
            else:
                self.message_user(
                    request,
                    _("Reverted “%(obj)s” to the version of %(when)s.") % {"obj": obj, "when": record.history_date},
                    messages.SUCCESS,
                )
                opts = self.model._meta
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
                )
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": _("Revert %(obj)s") % {"obj": obj},
            "opts": opts,
            "object": obj,
            "version": record,
            "form": form,
            "changes": version_changes(record, latest, exclude=frozenset(self.history_revert_keeps)),
            "kept": [opts.get_field(f).verbose_name for f in self.history_revert_keeps],
            "history_url": reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_history", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/history/revert_confirm.html", context)
