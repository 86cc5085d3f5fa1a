"""The human oracle's side of a round: what experts answer in and how their answers are checked.

``annotation`` (the annotation package and the answers file's checks), ``page`` (the offline
answer page), ``labelstudio`` (Label Studio's import and export formats).
"""
