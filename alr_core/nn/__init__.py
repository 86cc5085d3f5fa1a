"""Networks and the plain training engine shared by phase 1 and the rounds.

``models`` (classifiers, ``model.init``, checkpoints), ``training`` (device, batching,
optimiser, prediction), ``augment`` (batched augmentation on tensors), ``transfer`` (host-to-device
copies), ``distributed`` (DDP under ``torchrun``).
"""
