"""Self-supervised pretraining (the ``pretrain`` stage): SimCLR or VICReg on the train split's
images, labels never read.

``loss`` (NT-Xent and VICReg's), ``views`` (batched two-view augmentation), ``encoder`` (the
encoder, its projection head and checkpoint), ``loop`` (the training loop and the embedding
pass), ``embeddings`` (the embeddings table on disk).
"""
