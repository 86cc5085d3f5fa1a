"""Classification and clean-selection metrics: ``metrics``, pure functions over arrays.
"""
