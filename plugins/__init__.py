"""Built-in plugins, grouped by hook kind; registered exactly as external plugins are."""
