"""Benchmarks (`agentstream bench NAME`) and the local servers they and the tests use."""
