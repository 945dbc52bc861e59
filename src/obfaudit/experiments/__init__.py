"""The stage engine, and the training steps every front end shares.

- :mod:`.stages`: a stage (name, settings, inputs, function), its key and record, the resumable
  cache; :mod:`.executors` (serial, worker processes in :mod:`.pool`, Ray in :mod:`.ray_executor`)
  run a list of stages. The audit engine (:mod:`obfaudit.audit`) and the study's reproduction
  (:mod:`obfaudit.study`) plan on them.
- :mod:`.steps`: train and evaluate an InfNet or an ObfNet (``obfaudit train``, the study's
  stages), the task a dataset's InfNet learns, the check that a saved model fits the data.
"""
