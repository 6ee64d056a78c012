"""Before the limits become constraints (0004): raise every limit that is below what was already used to
exactly what was used.

Until now nothing stopped a marketer from lowering `redemptions_total`, `discount_total` or `order_value_total`
below the campaign's counters, so existing rows may have `used > limit`; adding the check constraints over
them would fail the migration. The counters are facts (redemptions that happened and were paid for), so they
are not touched; the limit is lifted to the usage instead. That keeps each campaign's behaviour: a campaign
whose usage reached its limit was refused further redemptions and still is (the engine refuses when
`count >= total` and when `used + amount > total`; the only change is that a redemption adding nothing, a zero
discount or a zero order value, now fits). The campaign's history keeps the limit the marketer had set.

Codes need nothing here: `code_redeemed_within_limit` has been a constraint since 0001.
"""

from django.db import migrations
from django.db.models import F

PAIRS = (
    ("redemptions_total", "redemptions_count"),
    ("discount_total", "discount_used"),
    ("order_value_total", "order_value_used"),
)


def lift_limits_to_usage(apps, schema_editor):
    Campaign = apps.get_model("campaigns", "Campaign")
    for limit, used in PAIRS:
        lifted = Campaign.objects.filter(**{f"{limit}__isnull": False, f"{used}__gt": F(limit)}).update(
            **{limit: F(used)}
        )
        if lifted:
            print(f"\n  campaigns: {lifted} campaign(s) had {used} above {limit}; {limit} raised to {used}")


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0002_campaign_use_right_support_channel")]

    operations = [migrations.RunPython(lift_limits_to_usage, migrations.RunPython.noop, elidable=False)]
