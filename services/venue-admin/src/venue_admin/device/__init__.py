"""Gate devices (闸机): registration, secrets, device tokens, deletion."""
