"""The member cockpit: server-rendered pages for members (not staff), one tenant's cockpit per URL prefix.

Signing in is by a one-time link (by email from the sign-in page, or handed over by a touchpoint through the
API); the member is then kept in the session under the cockpit's own key (`rewards.cockpit.auth`). Every page
reads only the signed-in member's rows: nothing in a cockpit URL names a member, and a code or reward of
someone else is a 404.
"""

from django import forms
from django.contrib import messages
from django.core.mail import EmailMessage
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from campaigns.models import Publication
from common.errors import ApplicationError
from common.side_effects import after_commit
from loyalty.ledger.selectors import ledger_entries
from loyalty.models import LedgerEntry
from members.cockpit_links import cockpit_link_make, cockpit_link_use, cockpit_sign_in_member
from members.models import Member, Tenant
from rewards.cockpit.auth import (
    brand,
    cockpit_sign_in,
    cockpit_sign_out,
    cockpit_tenant,
    cockpit_view,
    next_path_allowed,
    sign_in_request_allowed,
)
from rewards.cockpit.formats import LEDGER_KIND_LABELS
from rewards.cockpit.i18n import supported_language, tenant_language
from rewards.cockpit.selectors import cockpit_home
from rewards.models import Reward
from rewards.selectors import incentive_value, reward_catalog
from rewards.services.catalog import reward_purchase

LEDGER_PAGE_SIZE = 25

# The services' refusals in the member's words (their own messages are written for integrators).
REFUSALS = {
    "points_insufficient": gettext_lazy("You do not have enough points for this reward."),
    "reward_out_of_stock": gettext_lazy("This reward is out of stock."),
    "tier_required": gettext_lazy("This reward is reserved to members of some tiers."),
    "tenant_frozen": gettext_lazy("Rewards cannot be redeemed at the moment. Please try again later."),
    "member_suspended": gettext_lazy("Your membership is suspended: points cannot be spent."),
}
LINK_REFUSALS = {
    "link_expired": gettext_lazy("This sign-in link has expired."),
    "link_used": gettext_lazy("This sign-in link was already used."),
    "member_inactive": gettext_lazy("This membership cannot use the cockpit."),
}


def _page(request, tenant: Tenant, template: str, context=None, *, member: Member | None = None, status=200):
    context = {"tenant": tenant, "brand": brand(tenant), "member": member, **(context or {})}
    return TemplateResponse(request, f"cockpit/{template}.html", context, status=status)


def sign_in_link_url(request, tenant: Tenant, token: str) -> str:
    return request.build_absolute_uri(reverse("cockpit:link", kwargs={"tenant_slug": tenant.slug, "token": token}))


def _send_sign_in_link(request, tenant: Tenant, member: Member, *, language: str | None = None) -> None:
    """The email in `language`: the one the member was reading the sign-in page in, else their tenant's."""
    language = supported_language(language) or tenant_language(tenant)
    link = cockpit_link_make(member=member)
    context = {"tenant": tenant, "member": member, "url": sign_in_link_url(request, tenant, link.token)}
    context["expires_at"] = link.expires_at
    with translation.override(language):
        subject = render_to_string("cockpit/emails/sign_in_subject.txt", context).strip()
        body = render_to_string("cockpit/emails/sign_in.txt", context)
    email = EmailMessage(subject, body, None, [member.email], headers={"Content-Language": language})
    after_commit(email.send)


class SignInForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Your email address"), max_length=254)


def sign_in(request, tenant_slug: str):
    """The same answer whether or not the email is known: a link is sent only to a known active member."""
    tenant = cockpit_tenant(request, tenant_slug)
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if not sign_in_request_allowed(tenant=tenant, email=email, address=request.META.get("REMOTE_ADDR", "")):
            return _page(request, tenant, "sign_in", {"form": form, "throttled": True}, status=429)
        member = cockpit_sign_in_member(tenant=tenant, email=email)
        if member is not None:
            _send_sign_in_link(request, tenant, member, language=translation.get_language())
        return _page(request, tenant, "sign_in_sent", {"email": email})
    return _page(request, tenant, "sign_in", {"form": form})


def link(request, tenant_slug: str, token: str):
    """Opening a sign-in link: signs the member in and goes on to the cockpit home (or the link's next page)."""
    tenant = cockpit_tenant(request, tenant_slug)
    try:
        member, next_path = cockpit_link_use(tenant=tenant, token=token)
    except ApplicationError as exc:
        reason = LINK_REFUSALS.get(exc.code, _("This sign-in link is not valid."))
        return _page(request, tenant, "link_refused", {"reason": reason}, status=403)
    cockpit_sign_in(request, member)
    if next_path_allowed(tenant, next_path):
        return redirect(next_path)
    return redirect("cockpit:home", tenant_slug=tenant.slug)


@require_POST
def sign_out(request, tenant_slug: str):
    tenant = cockpit_tenant(request, tenant_slug)
    cockpit_sign_out(request)
    return _page(request, tenant, "signed_out")


@cockpit_view
def home(request, tenant: Tenant, member: Member):
    return _page(request, tenant, "home", cockpit_home(tenant=tenant, member=member), member=member)


class LedgerKindForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        choices=[("", gettext_lazy("All")), *((k, LEDGER_KIND_LABELS.get(k, v)) for k, v in LedgerEntry.Kind.choices)],
        required=False,
    )


@cockpit_view
def ledger(request, tenant: Tenant, member: Member):
    """The member's ledger entries, newest first, a page at a time, filtered by kind; htmx swaps the table only."""
    form = LedgerKindForm(request.GET or None)
    entries = ledger_entries(member)
    kind = form.cleaned_data["kind"] if form.is_valid() else ""
    if kind:
        entries = entries.filter(kind=kind)
    page = Paginator(entries, LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "kind": kind}
    template = "_ledger_table" if request.htmx and request.htmx.target == "ledger" else "ledger"
    return _page(request, tenant, template, context, member=member)


@cockpit_view
def catalog(request, tenant: Tenant, member: Member):
    rewards = reward_catalog(tenant=tenant, member=member)
    return _page(request, tenant, "catalog", {"rewards": rewards}, member=member)


@cockpit_view
def reward_redeem(request, tenant: Tenant, member: Member, reward_id: int):
    """Spends points on a catalog reward through the catalog service (the API's), then shows what it gave."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    reward = Reward.objects.for_tenant(tenant).filter(pk=reward_id, active=True).first()
    if reward is None:
        raise Http404
    try:
        purchase = reward_purchase(tenant=tenant, member=member, reward=reward)
    except ApplicationError as exc:
        messages.error(request, REFUSALS.get(exc.code, exc.message))
        return redirect("cockpit:catalog", tenant_slug=tenant.slug)
    if purchase.code_id:
        messages.success(request, _("%(reward)s is yours: here is your code.") % {"reward": reward.name})
        return redirect("cockpit:code", tenant_slug=tenant.slug, code=purchase.code.code)
    messages.success(request, _("%(reward)s is yours: we will be in touch about it.") % {"reward": reward.name})
    return redirect("cockpit:home", tenant_slug=tenant.slug)


@cockpit_view
def code_detail(request, tenant: Tenant, member: Member, code: str):
    """One code published to the member, large, to copy or show at the till; anybody else's code is a 404."""
    publication = (
        Publication.objects.filter(tenant=tenant, member=member, code__code=code)
        .select_related("code", "campaign")
        .first()
    )
    if publication is None:
        raise Http404
    context = {
        "publication": publication,
        "code": publication.code,
        "campaign": publication.campaign,
        "value": incentive_value(publication.campaign, publication.code),
    }
    return _page(request, tenant, "code", context, member=member)
