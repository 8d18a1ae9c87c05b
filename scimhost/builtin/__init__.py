"""The built-in default plugins, registered through entry points like any other plugin."""
