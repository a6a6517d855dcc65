"""The staff scanning page served at `/scan/` (router.py; the page itself under static/)."""
