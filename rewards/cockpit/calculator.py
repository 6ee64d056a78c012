"""The public reward calculator of a tenant: what a year of shopping would earn, no sign-in, nothing written.

A GET form (so a result is a link to share): orders a month, money per order, and how often each activity (the
program's event rules). The figures come from `loyalty.forecast`, which runs the year through the earning
code real orders go through; the rewards are the catalog's, priced for the balance and tier the year ends with
(`rewards.selectors.catalog_item`). A constant number of queries whatever the input: the tenant, its branding,
the program's rules and tiers, the catalog.
"""

from decimal import Decimal

from django import forms
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from loyalty.forecast import Activity, ProgramTerms, forecast_year, program_terms
from members.models import Tenant
from rewards.cockpit.auth import brand, cockpit_tenant
from rewards.selectors import CatalogMember, catalog_item, catalog_rewards

MAX_ORDERS_PER_MONTH = 100
MAX_TIMES_PER_MONTH = 100
MAX_ORDER_AMOUNT = Decimal("100000.00")


def activity_fields(activities: list[Activity]) -> dict[str, Activity]:
    """A stable form field name per activity (`activity-review`), unique even when two names slugify alike."""
    names: dict[str, Activity] = {}
    for n, activity in enumerate(activities, start=1):
        base = f"activity-{slugify(activity.event) or n}"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names[name] = activity
    return names


class CalculatorForm(forms.Form):
    """The visitor's habits; one field per activity of the program (0 by default)."""

    orders_per_month = forms.IntegerField(
        label=_("Orders a month"), min_value=0, max_value=MAX_ORDERS_PER_MONTH, initial=2
    )
    order_amount = forms.DecimalField(
        min_value=Decimal("0"), max_value=MAX_ORDER_AMOUNT, max_digits=8, decimal_places=2, initial=Decimal("50.00")
    )

    def __init__(self, *args, activities: list[Activity], currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["order_amount"].label = _("Spent per order (%(currency)s)") % {"currency": currency}
        self.activities = activity_fields(activities)
        for name, activity in self.activities.items():
            self.fields[name] = forms.IntegerField(
                label=activity.label,
                min_value=0,
                max_value=MAX_TIMES_PER_MONTH,
                required=False,
                initial=0,
                help_text=_("times a month (0 if never)"),
            )

    @property
    def shopping_fields(self):
        return [self[name] for name in ("orders_per_month", "order_amount")]

    @property
    def activity_fields(self):
        return [self[name] for name in self.activities]

    def counts(self) -> dict[str, int]:
        """The cleaned activity counts by event name."""
        return {activity.event: self.cleaned_data.get(name) or 0 for name, activity in self.activities.items()}


def _results(tenant: Tenant, terms: ProgramTerms, form: CalculatorForm) -> dict | None:
    """The year's forecast and the rewards it affords; None (with a form error) when it cannot be computed."""
    today = timezone.now().astimezone(tenant.tz).date()
    try:
        forecast = forecast_year(
            terms,
            tenant=tenant,
            start_day=today,
            orders_per_month=form.cleaned_data["orders_per_month"],
            order_amount=form.cleaned_data["order_amount"],
            activities=form.counts(),
        )
    except ApplicationError as exc:
        if exc.code != "points_out_of_range":
            raise
        form.add_error(None, _("These figures give more points than a balance can hold: please enter less."))
        return None
    viewer = CatalogMember(
        balance=forecast.balance, tiers=frozenset({forecast.tier.code}) if forecast.tier else frozenset()
    )
    items = [catalog_item(reward, viewer) for reward in catalog_rewards(tenant=tenant)]
    affordable = [item for item in items if item["affordable"] and item["in_stock"]]
    within_reach = next((item for item in items if item["eligible"] and not item["affordable"]), None)
    return {
        "forecast": forecast,
        "affordable": affordable,
        "next_reward": within_reach,
        "to_next_reward": within_reach["points_cost"] - forecast.balance if within_reach else 0,
        "tier_steps": [(tier, day) for tier, day in forecast.tiers_reached if tier is not None],
    }


def calculator(request, tenant_slug: str):
    """The calculator page (public); an htmx request gets the form and results only."""
    tenant = cockpit_tenant(request, tenant_slug)  # the one the language middleware read, if it did
    terms = program_terms(tenant)
    context = {"tenant": tenant, "brand": brand(tenant), "member": None, "terms": terms}
    if terms is not None:
        form = CalculatorForm(activities=terms.activities, currency=tenant.currency)
        if any(name in request.GET for name in form.fields):  # other parameters (a campaign's utm_*) bind nothing
            form = CalculatorForm(request.GET, activities=terms.activities, currency=tenant.currency)
        context["form"] = form
        if form.is_bound and form.is_valid():
            context["results"] = _results(tenant, terms, form)
    template = "cockpit/_calculator.html" if request.htmx else "cockpit/calculator.html"
    return TemplateResponse(request, template, context)
