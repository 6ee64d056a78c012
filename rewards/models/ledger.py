"""Points ledger models: accounts, append-only entries, lots (issue 3)."""
