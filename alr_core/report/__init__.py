"""What the user reads: the run's summary, figures, the labels after the rounds, the label-issue
report and experiment comparisons.

``summary`` (phase 1 and every round in one table), ``outputs`` (report.json, plots), ``final_labels``
(every train sample's given and current label, data/report/labels.csv), ``overview`` (``python -m
stages.summary``), ``stopped`` (the report of the rounds before a round that stopped),
``label_issues`` (the ranked CSV and gallery), ``compare`` (a sweep of DVC experiments in one table).
"""
