"""Persons and their live status: code colour, latest NAT, vaccination summary."""
