"""Check, in three parts: :mod:`bot.check.evaluate` (pure: the change judged against its base's anchors; no forge,
no ledger), :mod:`bot.check.ci` (the one CI step: sign, record, file, publish) and :mod:`bot.check.preflight` (the
same evaluation of a ChangeRequest's would-be commit, before any PR).

plan → Rego policy pack → checkov → risk → verdict, then ``verdict.json``, ``verdict.sarif``, ``summary.md`` and
a DSSE-signed in-toto attestation. The trust anchors (policy pack, registry, waivers) are read from the BASE
commit, never from the head: a PR cannot judge itself. Any exception anywhere produces a FAILED verdict that
names its cause (I5). Free text (rationale prose, PR body, commit messages) never enters the policy input (I8).
"""
