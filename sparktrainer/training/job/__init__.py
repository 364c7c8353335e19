"""What a recipe gets to run one job (``context.JobContext``), one module per concern.

``spec`` (the job, its attempt, its typed config), ``stopping`` (the stop flag and the time
limit), ``uploads`` (background checkpoint uploads, the resume download), ``publish`` (the
final model, metadata.json last) and ``environment`` (``env.json``).
"""
