"""Read-only KPIs over a merchant's own ledger, from rollups kept with the ledger."""
