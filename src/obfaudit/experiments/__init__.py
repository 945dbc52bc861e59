"""The stage engine and the study's reproduction.

- :mod:`.stages`: a stage (name, settings, inputs, function), its key and record, the resumable
  cache; :mod:`.executors` (serial, worker processes in :mod:`.pool`, Ray in :mod:`.ray_executor`)
  run a list of stages. The audit engine (:mod:`obfaudit.audit`) plans every audit on them.
- The reproduction of the 2025 study: :mod:`.presets`, :mod:`.plan` (its InfNets, ObfNets, their
  audits and controls, cost and scaling as stages), :mod:`.steps`, :mod:`.context`,
  :mod:`.reproduce` (the findings) and :mod:`.scaling`.
"""
