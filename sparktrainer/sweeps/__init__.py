"""Sweeps: the controller's state folded from the log, its sampling, early stopping, decisions."""
