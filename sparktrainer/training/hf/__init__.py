"""The Hugging Face room: models, text data, LoRA, the text step and the recipe.

``recipe.train_huggingface`` trains or fine-tunes transformers models on the one
``TrainingLoop``; ``models`` finds and loads them, ``lora`` wraps them with peft.
"""
