"""The HTTP side: the gateway, its routes (API, webhooks, inbox), sessions and sockets, and the owner service."""
