# The rewards console, split by concept: the ledger (read-only) and redemptions with the catalog.
from rewards.admin import ledger, redemption  # noqa: F401
