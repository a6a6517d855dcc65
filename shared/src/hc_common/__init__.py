"""Infrastructure shared by the health code services; no domain rules live here."""
