"""The cockpit's privacy pages: personal data and consent per channel, the program's terms, the data export and
the erasure request. Every write goes through a members service; every read is of the signed-in member only.
"""

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django_countries import countries

from common.errors import ApplicationError
from members.models import CONSENT_CHANNELS, ConsentChange, ErasureRequest, Member, Tenant, TermsVersion
from members.services import (
    erasure_request_cancel,
    erasure_request_create,
    member_consent_set,
    member_fields_errors,
    member_upsert,
    terms_accept,
)
from rewards.cockpit.auth import cockpit_view
from rewards.cockpit.export import member_export_chunks
from rewards.cockpit.selectors import terms_state
from rewards.cockpit.views import _page

PROFILE_FIELDS = ("name", "email", "phone", "country", "city", "birth_date")
CHANNEL_LABELS = {
    "email": gettext_lazy("Email"),
    "sms": gettext_lazy("Text messages (SMS)"),
    "push": gettext_lazy("Notifications in the app (push)"),
}


class ProfileForm(forms.Form):
    """What a member may change about themselves; checked again by `member_upsert`'s own rules (`clean`)."""

    name = forms.CharField(label=gettext_lazy("Name"), max_length=200, required=False)
    email = forms.EmailField(
        label=gettext_lazy("Email address"),
        max_length=254,
        help_text=gettext_lazy("Your sign-in links are sent here."),
    )
    phone = forms.CharField(label=gettext_lazy("Phone number"), max_length=40, required=False)
    country = forms.ChoiceField(label=gettext_lazy("Country"), required=False)
    city = forms.CharField(label=gettext_lazy("City"), max_length=100, required=False)
    birth_date = forms.DateField(
        label=gettext_lazy("Birthday"),
        required=False,
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),  # ISO whatever the language
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["country"].choices = [("", "-"), *countries]
        autocomplete = {
            "name": "name",
            "email": "email",
            "phone": "tel",
            "country": "country",
            "city": "address-level2",
        }
        for name, field in self.fields.items():  # labels, help and errors are tied to the inputs by Django
            field.widget.attrs["autocomplete"] = autocomplete.get(name, "bday")

    def clean(self):
        cleaned = super().clean()
        for name, message in member_fields_errors({k: v for k, v in cleaned.items() if k in PROFILE_FIELDS}).items():
            if name in self.fields and name not in self.errors:
                self.add_error(name, message)
        return cleaned


class ConsentForm(forms.Form):
    email = forms.BooleanField(label=CHANNEL_LABELS["email"], required=False)
    sms = forms.BooleanField(label=CHANNEL_LABELS["sms"], required=False)
    push = forms.BooleanField(label=CHANNEL_LABELS["push"], required=False)


def _consent_form(member: Member, data=None) -> ConsentForm:
    # Its own ids: the personal data form on the same page has an `email` field too.
    initial = {c: getattr(member, f"{c}_consent") for c in CONSENT_CHANNELS}
    return ConsentForm(data, initial=initial, auto_id="id_consent_%s")


def _profile_form(member: Member, data=None) -> ProfileForm:
    return ProfileForm(data, initial={name: getattr(member, name) for name in PROFILE_FIELDS})


def _personal_data_page(request, tenant: Tenant, member: Member, *, profile_form=None, consent_form=None, status=200):
    rows = [
        {
            "label": CHANNEL_LABELS[c],
            "granted": getattr(member, f"{c}_consent"),
            "changed_at": getattr(member, f"{c}_consent_changed_at"),
        }
        for c in CONSENT_CHANNELS
    ]
    context = {
        "profile_form": profile_form or _profile_form(member),
        "consent_form": consent_form or _consent_form(member),
        "consent_rows": rows,
    }
    return _page(request, tenant, "personal_data", context, member=member, status=status)


@cockpit_view
def personal_data(request, tenant: Tenant, member: Member):
    """The member's own data (GET), or a change of it (POST) through `member_upsert`, as the API changes it."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.method == "GET":
        return _personal_data_page(request, tenant, member)
    form = _profile_form(member, request.POST)
    if not form.is_valid():
        return _personal_data_page(request, tenant, member, profile_form=form, status=400)
    changed = {name: form.cleaned_data[name] for name in form.changed_data if name in PROFILE_FIELDS}
    if changed:
        try:
            member_upsert(tenant=tenant, external_id=member.external_id, **changed)
        except ApplicationError as exc:  # the service's own checks, already run by the form: a last resort
            for name, message in exc.details.items():
                form.add_error(name if name in form.fields else None, message)
            return _personal_data_page(request, tenant, member, profile_form=form, status=400)
    messages.success(request, _("Your personal data is saved."))
    return redirect("cockpit:personal-data", tenant_slug=tenant.slug)


@cockpit_view
def consent(request, tenant: Tenant, member: Member):
    """Gives or withdraws consent per channel; each channel that changes is time-stamped, source "cockpit"."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = _consent_form(member, request.POST)
    form.is_valid()  # unticked boxes are False: a boolean form is always valid
    member_consent_set(
        member=member,
        consent={c: bool(form.cleaned_data.get(c)) for c in CONSENT_CHANNELS},
        source=ConsentChange.Source.COCKPIT,
    )
    messages.success(request, _("Your choices are saved."))
    return redirect("cockpit:personal-data", tenant_slug=tenant.slug)


# --- terms ------------------------------------------------------------------------------------------------


@cockpit_view
def terms(request, tenant: Tenant, member: Member):
    current, acceptance = terms_state(tenant, member)
    return _page(request, tenant, "terms", {"terms": current, "acceptance": acceptance}, member=member)


@cockpit_view
def terms_accept_view(request, tenant: Tenant, member: Member):
    """Records the acceptance of the version the member read (the page's hidden id); a newer one is shown again."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    version = TermsVersion.objects.for_tenant(tenant).filter(pk=_int(request.POST.get("terms"))).first()
    if version is None:
        raise Http404
    try:
        terms_accept(member=member, terms=version)
    except ApplicationError:
        messages.error(request, _("The terms changed while you were reading them: please read the new version."))
    else:
        messages.success(request, _("Thank you: you accepted the program's terms."))
    return redirect("cockpit:terms", tenant_slug=tenant.slug)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- data export ------------------------------------------------------------------------------------------


@cockpit_view
def export(request, tenant: Tenant, member: Member):
    """Everything the tenant holds about the member, as one JSON file (streamed, a bounded amount in memory)."""
    response = StreamingHttpResponse(
        member_export_chunks(tenant=tenant, member=member), content_type="application/json"
    )
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-my-data-{stamp}.json"'
    response["Cache-Control"] = "no-store"
    return response


# --- erasure ----------------------------------------------------------------------------------------------


class ErasureForm(forms.Form):
    confirm = forms.BooleanField(
        error_messages={"required": gettext_lazy("Tick the box to confirm that your data should be erased.")}
    )


def _erasure_page(request, tenant: Tenant, member: Member, form=None, status=200):
    open_request = ErasureRequest.objects.filter(
        tenant=tenant, member=member, state=ErasureRequest.State.REQUESTED
    ).first()
    grace = dt.timedelta(days=settings.ERASURE_GRACE_DAYS)
    context = {
        "form": form or ErasureForm(),
        "open_request": open_request,
        "due_at": open_request.requested_at + grace if open_request else None,
        "grace_days": settings.ERASURE_GRACE_DAYS,
    }
    return _page(request, tenant, "erasure", context, member=member, status=status)


@cockpit_view
def erasure(request, tenant: Tenant, member: Member):
    """The confirmation page (GET) and the request itself (POST, CSRF-checked, the box ticked)."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.method == "GET":
        return _erasure_page(request, tenant, member)
    form = ErasureForm(request.POST)
    if not form.is_valid():
        return _erasure_page(request, tenant, member, form=form, status=400)
    erasure_request_create(member=member)
    messages.success(request, _("Your request is recorded: your data will be erased."))
    return redirect("cockpit:erasure", tenant_slug=tenant.slug)


@require_POST
@cockpit_view
def erasure_cancel(request, tenant: Tenant, member: Member):
    if erasure_request_cancel(member=member):
        messages.success(request, _("Your request is cancelled: your data stays."))
    return redirect("cockpit:erasure", tenant_slug=tenant.slug)
