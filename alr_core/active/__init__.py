"""Phase 2, active label cleaning: the round's bookkeeping and its steps.

``rounds`` (a round's folders and budget), ``labels`` (the budget check, query, the working label
table), ``strategies`` (query scores, pure functions over arrays), ``scoring`` (the model scores
the pool), ``consensus`` (several answers → one label), ``retrain`` (the round's model).
"""
