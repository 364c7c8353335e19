"""The Hugging Face recipe's parts: model loading, LoRA, text data and the training loop."""
