# The rewards app's models, split by concept: the points ledger, and redemptions with the catalog.
from rewards.models.ledger import *  # noqa: F401,F403
from rewards.models.redemption import *  # noqa: F401,F403
