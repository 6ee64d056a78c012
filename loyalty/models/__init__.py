# The loyalty app's models, split by concept: the program (tiers, earning rules), orders, the points ledger,
# and the staff limits on adjusting it.
from loyalty.models.ledger import *  # noqa: F401,F403
from loyalty.models.orders import *  # noqa: F401,F403
from loyalty.models.program import *  # noqa: F401,F403
from loyalty.models.staff_limits import *  # noqa: F401,F403
