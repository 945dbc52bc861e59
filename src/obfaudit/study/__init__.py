"""The reproduction of the 2025 study (``obfaudit reproduce``), above the audit engine.

- :mod:`.presets`: the presets and a run's settings; :mod:`.context`: what a run's stages share.
- :mod:`.plan`: the InfNets and ObfNets as stages, and their audits planned by
  :mod:`obfaudit.audit.plan` (one judge, one attack stage, the records the report collects).
- :mod:`.scaling`: the cost table and the 224x224x3 study; :mod:`.reproduce`: run the plan and
  write the report (its findings in :mod:`obfaudit.report.findings`).
"""
