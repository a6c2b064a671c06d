"""Interfaces (ports) the manager's core depends on; adapters implement them."""
