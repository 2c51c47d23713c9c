"""Show a pipeline job's step log (``step X started`` / ``finished in N s``) on a stream.

For commands that run a job in their own process (no broker): the job runs
inside ``job_create``, so polling the job row would show nothing until the end.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

LOGGER = "apps.pipeline.services"


class step_log_to:  # noqa: N801 - used as a context manager, like contextlib's
    """Within the block, the job's step log lines go to ``out`` (and only there)."""

    def __init__(self, out: Any) -> None:
        self.handler = logging.StreamHandler(out)
        self.handler.setFormatter(logging.Formatter("  %(message)s"))
        self.log = logging.getLogger(LOGGER)

    def __enter__(self) -> None:
        self.level, self.propagate = self.log.level, self.log.propagate
        self.log.addHandler(self.handler)
        self.log.setLevel(logging.INFO)
        self.log.propagate = False  # printed here instead of (not as well as) the root's

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.log.removeHandler(self.handler)
        self.log.setLevel(self.level)
        self.log.propagate = self.propagate
