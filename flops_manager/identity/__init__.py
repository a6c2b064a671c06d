"""Identities of components: enrollment grants, working credentials and who may say what.

Pure decisions: :mod:`.grants` (enrollment tokens), :mod:`.broker_policy` (the topics a role may
publish on), :mod:`.event_policy` (which role may send which event). I/O: :mod:`.enrollment`.
"""
