# The rewards app's models: redemptions, gift card balances, the reward catalog, referrals, evaluation traces,
# and the support console's approval requests.
from rewards.models.approvals import *  # noqa: F401,F403
from rewards.models.redemption import *  # noqa: F401,F403
from rewards.models.traces import *  # noqa: F401,F403
