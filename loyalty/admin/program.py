"""Admin for programs, tiers and earning rules (issue 3)."""
