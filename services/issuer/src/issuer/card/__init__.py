"""The printed forms of a credential: its QR code (PNG, SVG) and the card PDF."""
