"""The local stack: Kafka and ministack processes, `agentstream up`'s supervisor and its proxy."""
