"""The researcher REST API (``/api/v1/``): token or session auth, staff users only.

Every study-scoped read and action goes through
:func:`apps.studies.permissions.studies_visible_to`; a study a researcher may
not see is a 404, never a 403 (its existence is not revealed).
"""
