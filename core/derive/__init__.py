"""Derivation: who each contact is to the user, from synced mail and calendar metadata.

Pure rules live in `people` (who is a person), `history` (email and meeting facts) and
`strength` (cadence, score, reasons); `store` is the only module that touches the database.

The sync engine's page commit records what a page touched (`store.touched_addresses` before
`core.mailstore.apply_changes`, then `dirty.mark_dirty`); `dirty.drain` recomputes those
contacts in batches (`store.update_contacts`), every few seconds during a sync and at its end.

From `warmline derive --rebuild`: `store.rebuild_user(session, user_id=..., now=utcnow())`.
"""

from core.derive.store import DeriveResult, rebuild_user, touched_addresses, update_contacts

__all__ = ["DeriveResult", "rebuild_user", "touched_addresses", "update_contacts"]
