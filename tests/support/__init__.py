"""Test fixtures' building blocks: the MongoDB-wire server, RabbitMQ virtual hosts, the running stack."""
