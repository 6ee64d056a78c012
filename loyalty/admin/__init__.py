# The loyalty console, split by concept: the program (tiers, earning rules, orders) and integrations.
from loyalty.admin import integrations, program  # noqa: F401
