"""What talks to Kafka: the clients, topics and records, and the dead-letter topic."""
