"""Pure PyTorch/NumPy/PIL compute for xai-crowd studies.

Nothing in this package imports Django: the web process never loads torch, and
the Celery adapter (``workers/tasks.py``) imports :mod:`workers.pipeline` inside
the task body. Everything here is importable and testable on a CPU laptop.
"""
