"""The tasks run.py runs (``task=train``, ``task=eval``), each one module read top to bottom."""
