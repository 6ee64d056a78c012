"""The loyalty app's writes, one module per concept: program, earning, tiers, returns."""
