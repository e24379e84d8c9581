"""Adapters to the outside world: persistence configuration and settings."""
