"""Built-in precision plugins (none yet)."""
