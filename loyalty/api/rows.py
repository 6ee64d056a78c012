"""Model instances from hand-written SELECTs, for the few queries every API call runs (see
`campaigns.lock_objects`, where the helpers live for the checkout's own reads)."""

from campaigns.lock_objects import instance, instances, select_list, width

__all__ = ["instance", "instances", "select_list", "width"]
