"""Readers that turn measurements made elsewhere into step samples."""
