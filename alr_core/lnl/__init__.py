"""Phase 1, learning with noisy labels, and the clean guess C.

``phase1`` (plain CE, Co-teaching, Co-teaching + VOG), ``selection`` (Co-teaching's per-batch
rules), ``vog`` (Variance of Gradients), ``class_rules`` (per-class rules over the whole split),
``feature_rules`` (rules over the ``pretrain`` embeddings), ``safety_net`` (CE's model when it
validates better).
"""
