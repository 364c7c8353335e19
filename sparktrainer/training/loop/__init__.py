"""The one training loop every recipe runs (``training_loop.TrainingLoop``) and its parts.

``plan`` is what a recipe hands the loop and gets back; ``precision``, ``optim``, ``metrics``,
``clock``, ``device`` and ``stop_vote`` are the pieces no recipe needs to know about. Nothing
here knows a model's type, S3 or Kafka.
"""
