"""Training, one room per concern; it knows no Kafka, no HTTP and no CLI.

- ``runner``: the trainer's plain logic, one validated job from pick-up to its single
  terminal event (``drive_job``), and cancels.
- ``worker/``: the warm training process (``WarmWorker``), its pipe protocol and its main.
- ``recipes``: the recipe of each config kind and ``run_recipe_job``, the child's one call.
- ``job/``: what a recipe gets (``JobContext``): spec, stop flag, checkpoint uploads, publishing.
- ``recipe_steps``: the recipe protocol and the steps every recipe shares.
- ``loop/``: the one training loop (``TrainingLoop``) and its parts.
- ``pytorch/``, ``hf/``: each framework's models, data, batch step and recipe.
- ``distributed``: DDP ranks; ``checkpoint``: resume state and the safe torch loader.

Importing this package is cheap (no torch): the trainer consumer imports ``runner`` and
``worker.warm`` on its asyncio side, and only the worker's child process imports torch.
"""
