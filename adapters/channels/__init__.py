"""Channel adapters: verify and parse what vendors send, and send replies back."""
