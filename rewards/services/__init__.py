"""Services of the rewards app, split by concept (ledger, redemption, catalog)."""
