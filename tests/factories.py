import factory
from django.contrib.auth import get_user_model

from members.models import Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    currency = "EUR"
    time_zone = "Europe/Berlin"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


# --- integrations and API keys ---------------------------------------------------------------


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "integrations.Integration"

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"integration-{n}")


def api_key_for(tenant=None, *, scopes=None, integration=None, throttle_rate: str = "", **kwargs):
    """A key of a new (or the given) integration of `tenant`: returns (api_key, raw_key)."""
    from integrations.keys import api_key_create

    integration = integration or IntegrationFactory(tenant=tenant or TenantFactory())
    return api_key_create(integration=integration, scopes=scopes, throttle_rate=throttle_rate, **kwargs)


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "integrations.WebhookEndpoint"

    tenant = factory.SubFactory(TenantFactory)
    url = factory.Sequence(lambda n: f"http://127.0.0.1:9/hook-{n}")
    event_types = factory.LazyFunction(lambda: ["member.created"])


# --- campaigns, codes, redemptions, catalog ----------------------------------------------------


class EngineMemberFactory(factory.django.DjangoModelFactory):
    """A member for the campaign engine's tests (model strings keep this module import-light)."""

    class Meta:
        model = "members.Member"

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"c-{n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    name = factory.Sequence(lambda n: f"Member {n}")
    country = "GB"
    referral_code = factory.Sequence(lambda n: f"REF{n:06d}")
    # Consent per channel follows `marketing_consent` unless a test sets a channel (as `member_upsert` writes it).
    marketing_consent = False
    email_consent = factory.SelfAttribute("marketing_consent")
    sms_consent = factory.SelfAttribute("marketing_consent")
    push_consent = factory.SelfAttribute("marketing_consent")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.Campaign"

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    type = "discount"
    enabled = True
    discount = factory.LazyFunction(lambda: {"type": "percent", "value": "10"})
    breaker_enabled = False


class CodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.Code"

    campaign = factory.SubFactory(CampaignFactory)
    tenant = factory.LazyAttribute(lambda o: o.campaign.tenant)
    code = factory.Sequence(lambda n: f"CODE-{n:06d}")
    usage_limit = 1


class GiftCardCodeFactory(CodeFactory):
    campaign = factory.SubFactory(
        CampaignFactory, type="gift_card", discount=factory.LazyFunction(dict), gift_card_amount="50.00"
    )
    code = factory.Sequence(lambda n: f"GC-{n:06d}")
    usage_limit = None
    initial_balance = factory.LazyAttribute(lambda o: o.campaign.gift_card_amount)
    balance = factory.LazyAttribute(lambda o: o.campaign.gift_card_amount)


class RewardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "rewards.Reward"

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Reward {n}")
    type = "product"
    points_cost = 500
    sku = "MUG"


# --- members, programs, tiers, earning rules --------------------------------------------------


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "members.Member"

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"m-{n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    name = factory.Sequence(lambda n: f"Member {n}")
    referral_code = factory.Sequence(lambda n: f"REF-{n:05d}")
    # Consent per channel follows `marketing_consent` unless a test sets a channel (as `member_upsert` writes it).
    marketing_consent = False
    email_consent = factory.SelfAttribute("marketing_consent")
    sms_consent = factory.SelfAttribute("marketing_consent")
    push_consent = factory.SelfAttribute("marketing_consent")


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.Program"

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"club-{n}")
    name = "Club"
    currency = factory.LazyAttribute(lambda o: o.tenant.currency)
    points_name = "points"
    expiry_policy = factory.LazyFunction(lambda: {"policy": "never"})


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.Tier"

    program = factory.SubFactory(ProgramFactory)
    tenant = factory.LazyAttribute(lambda o: o.program.tenant)
    code = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    threshold = 0
    multiplier = "1.0"


class EarningRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.EarningRule"

    program = factory.SubFactory(ProgramFactory)
    tenant = factory.LazyAttribute(lambda o: o.program.tenant)
    code = factory.Sequence(lambda n: f"rule-{n}")
    trigger = "order_paid"
    points_per_unit = "1"
    unit_amount = "1.00"


def earning_setup(tenant=None, *, expiry=None, **rule_fields):
    """A tenant's program with one spend rule (1 point per 1.00 unless overridden) and a member."""
    tenant = tenant or TenantFactory()
    program = ProgramFactory(tenant=tenant, expiry_policy=expiry or {"policy": "never"})
    rule = EarningRuleFactory(program=program, **rule_fields)
    member = MemberFactory(tenant=tenant)
    return program, rule, member


def form_token() -> str:
    """A fresh one-time token for a guarded admin form (`members.form_once`), as the rendered form carries."""
    from members.form_once import new_token

    return new_token()
