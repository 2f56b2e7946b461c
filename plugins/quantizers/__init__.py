"""Built-in quantizers plugins (none yet)."""
