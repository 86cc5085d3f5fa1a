"""Data in: any source to one images array and sample table, splits, and injected noise.

``sources`` (a reader per ``data.source``), ``images`` (decoding, PNG/data URI), ``fingerprint``
(the source files as a dependency of ``prepare``), ``identical`` (identical images kept in one
split), ``prepare``, ``splits``, ``synthetic`` (the benchmark source), ``noise`` (label noise with
known truth), ``datasets`` (per-split training data).
"""
