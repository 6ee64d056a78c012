# The rewards app's models: redemptions, gift card balances, the reward catalog, referrals.
from rewards.models.redemption import *  # noqa: F401,F403
