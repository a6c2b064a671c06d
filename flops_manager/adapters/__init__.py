"""Adapters: the only modules that talk to MongoDB, MQTT, HTTP identity providers or processes."""
