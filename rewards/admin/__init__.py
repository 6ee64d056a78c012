# The rewards console: redemptions (applied after the fact, rolled back), gift cards, the catalog, referrals,
# the campaign console's "Test rule" page (it validates through the redemption engine), and the support
# console's member search and member story (they read every app below this one).
from rewards.admin import (  # noqa: F401
    approvals,
    campaign_numbers,
    campaign_rule_tester,
    explain,
    member_story,
    redemption,
)
