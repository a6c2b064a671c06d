"""Use cases: call ports, own no I/O."""
