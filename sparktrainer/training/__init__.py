"""Training: architectures, data, the PyTorch recipe, checkpoints and the warm worker.

Importing this package is cheap (no torch): the trainer consumer imports
``sparktrainer.training.worker`` on its asyncio side and only the worker's child process
imports torch. Entry points: ``recipes.run_job(ctx)`` and ``worker.WarmWorker``.
"""
