# The loyalty console, split by concept: the program (tiers, earning rules, orders) and the ledger (read-only).
from loyalty.admin import ledger, program  # noqa: F401
