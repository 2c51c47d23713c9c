"""A study's full archive: one zip that recreates the study in another instance.

``study_export`` writes, streamed to disk::

    archive.json                         format version, what is inside, sha256 per file
    data/NN-<app.model>-NNNNN.json       the rows (Django's serializer), in load order,
                                         at most ROWS_PER_FILE per file
    files/<storage>/<name>               stimuli and source images (opaque names kept),
                                         checkpoints (``--with-checkpoints``), the latest
                                         analysis results
    export/responses.csv                 the response CSV researchers download

``study_import`` loads it into an instance without that study or its model
family: rows keep their ids and timestamps (the response CSV names task and
image ids), users are matched by username (created inactive when missing).
"""

from apps.studies.archive.dump import ArchiveError, study_export
from apps.studies.archive.load import study_import

__all__ = ["ArchiveError", "study_export", "study_import"]
