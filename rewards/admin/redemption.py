"""Redemption, gift card and reward catalog admin (issue 4)."""
