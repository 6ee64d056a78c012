"""Read-only ledger admin with corrections through the posting service (issue 3)."""
