"""Staged launches: a pilot judged by a KPI gate, a winner roll-out, approvals (docs/launches.md).

- `spec`: what a segment's `meta.activation` declares (pilot, experiment.rollout, approval_above);
- `stats`: the Wilson interval the gate's rule reads;
- `store`: the decisions (tideline_sync.launch_decisions): gate verdicts with their numbers,
  roll-out winners, releases, cancellations, approvals;
- `gate`: the step the sync engine runs after the policies: who of the audience may be sent to
  at the launch's current stage, and the decisions due now;
- `notify`: staff alerts when a pilot's gate fails.
"""
