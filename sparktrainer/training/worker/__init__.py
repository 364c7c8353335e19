"""The warm training process: ``warm.WarmWorker`` (the parent's handle) and ``child`` (its main).

``protocol`` is what travels over the two pipes between them. Importing ``warm`` is cheap (no
torch): the trainer consumer imports it on its asyncio side; only the child imports torch.
"""
