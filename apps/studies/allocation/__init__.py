"""The allocation engine: which rater gets which answer slot, and for how long.

Design (issue 9): every task has ``quota`` :class:`~apps.studies.models.Slot`
rows. A claim is one ordered, indexed pick of the first claimable slot
(``SELECT … ORDER BY rank LIMIT 1 FOR UPDATE SKIP LOCKED``) and the lease is
written on that row, so concurrent claims cannot over-lease and
``answers + live leases <= quota`` holds by construction. Exclusions (never a
task twice, never an image twice per experiment, optionally per study) are
index probes of the rater's own assignments.

Only lease and claim logic lives here; the rater flow that decides *when* to
claim (targets, study states, completion) is :mod:`apps.studies.services.serving`.
"""

from apps.studies.allocation.claimant import Claimant
from apps.studies.allocation.claims import slot_claim, work_remains
from apps.studies.allocation.leases import answer_place, lease_release, lease_renew, leases_expire

__all__ = [
    "Claimant",
    "answer_place",
    "lease_release",
    "lease_renew",
    "leases_expire",
    "slot_claim",
    "work_remains",
]
