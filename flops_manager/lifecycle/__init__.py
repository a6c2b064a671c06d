"""Project lifecycle: pure state and planner, plus the reconcile worker that runs actions."""
