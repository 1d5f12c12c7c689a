"""Composition root, settings, CLI and the event contract of agentstream."""
