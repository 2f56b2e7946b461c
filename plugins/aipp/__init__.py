"""Built-in aipp plugins (none yet)."""
