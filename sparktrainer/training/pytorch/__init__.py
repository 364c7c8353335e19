"""The PyTorch room: the architecture registry, data, model files, the tensor step, the recipe.

``recipe.train_pytorch`` trains MLPs, custom ResNets, torchvision models and fine-tunes of
registered PyTorch models on the one ``TrainingLoop``.
"""
