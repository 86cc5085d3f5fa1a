"""alr — active label refinement for noisy, imbalanced medical image classification.

The library behind the DVC stages in ``stages/``: every piece of logic lives here, in small
modules with one job each, so that it can be tested without running the pipeline.
"""
