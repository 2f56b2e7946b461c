"""Tests of the plugin host: the manager, entry points and the openatc.testing plugin."""
