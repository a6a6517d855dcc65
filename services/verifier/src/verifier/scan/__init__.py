"""The scan: what a QR code names, whether the scanner may scan, and the decision."""
