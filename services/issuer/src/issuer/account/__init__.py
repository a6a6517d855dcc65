"""App users and phone sign-in."""
