"""What talks to DynamoDB: the clients, the tables, the event and projection stores, and the other stores."""
