"""Parity tooling: proof that the dialogue world behaves as ConvLab-2 did, against its golden traces.

Nothing here is part of the world itself; production modules (``goal``, ``agenda``, ``dst``, ``vector``,
``rule_policy``, ``evaluator``, ...) never import this package, it imports them.

* ``traces``: reading the golden trace files, moving a Mersenne Twister to a recorded position, and the
  ``Mismatch`` / ``TurnTally`` bookkeeping every comparer shares.
* ``system``: the system-side comparers (rule DST, vectoriser, rule policy, evaluator), each replaying one
  recorded dialogue teacher-forced and returning ``(matched, total, first_mismatch)``.
* ``replay``: ``python -m envs.multiwoz.parity.replay TRACE.jsonl[.gz]``, every component over a trace file
  (the user-side comparers live there) and the parity report.
"""
