"""Family credentials: application, listing, reissue, revocation, the QR token."""
