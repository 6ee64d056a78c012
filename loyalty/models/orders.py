"""Orders reported by the touchpoints (paid orders, returns): the base of earning and spend rules (issue 3)."""
