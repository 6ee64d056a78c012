"""Redemptions, rollbacks, gift card balances and the reward catalog (issue 4)."""
