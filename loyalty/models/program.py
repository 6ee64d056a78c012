"""Programs, tiers, tier status and earning rules (issue 3)."""
