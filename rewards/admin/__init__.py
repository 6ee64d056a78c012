# The rewards console: redemptions (applied after the fact, rolled back), gift cards, the catalog, referrals,
# and the campaign console's "Test rule" page (it validates through the redemption engine).
from rewards.admin import campaign_rule_tester, redemption  # noqa: F401
