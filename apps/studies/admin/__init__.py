"""The studies in the admin; a study's change page is its home (``admin/studies/study/``).

Every admin here shows only the studies the user may see
(:func:`apps.studies.permissions.studies_visible_to`); an object page of any other
study is a 404.
"""

from apps.studies.admin import records, study  # noqa: F401  (registers the admins)
from apps.studies.admin.common import VisibleStudiesMixin, by_study, rater_link

__all__ = ["VisibleStudiesMixin", "by_study", "rater_link"]
