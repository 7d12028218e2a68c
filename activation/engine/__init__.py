"""The sync engine: one sync (segment × destination), from plan to delivery ledger.

    from activation.engine import SyncEngine
    result = SyncEngine(con, destination, binding, policies).run(dry_run=False)

One module per concern; start with run.py, which reads as the run's order:

    run.py            SyncEngine: resolve, reconcile, plan, policies, record, send, fold, finish
    journal.py        what a crashed run left unrecorded: the outcome journal (idempotent
                      destinations), the delivery journal (SMTP), resolving them
    backoff.py        the destination's Retry-After, carried from one run to the next
    ledger_writes.py  appending decisions and outcomes to the delivery ledger; the writer thread
    sending.py        windows, batches, the worker pool, the rate limit, per-batch results
    state.py          folding deliveries into synced_state; the run record (SyncResult, sync_runs)

What a destination can do is declared in its class (activation.destinations.base:
idempotent_delivery, encoded_batches, finalize, delivery_evidence), never probed here.
"""

from activation.engine.run import SyncEngine
from activation.engine.state import SyncResult

__all__ = ["SyncEngine", "SyncResult"]
