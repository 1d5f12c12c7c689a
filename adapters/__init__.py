"""I/O: DynamoDB, Kafka, channels, the model and the HTTP gateway."""
