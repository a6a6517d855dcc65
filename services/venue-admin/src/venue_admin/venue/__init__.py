"""Venues, their members and permissions, and their entry rule."""
