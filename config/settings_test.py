"""Settings of the test suite (pyproject's ``DJANGO_SETTINGS_MODULE``): config.settings as
a laptop runs it.

``DEBUG`` is off unless set (config/settings.py), which makes SECRET_KEY mandatory and
turns on the HTTPS redirect; a test run is a laptop run, so it defaults to ``DEBUG=1``
here, before the settings are read. (A root conftest.py cannot do this: pytest-django
imports the settings before pytest loads any conftest.) pytest-django still runs every
test with ``settings.DEBUG = False``. ``DEBUG=0 SECRET_KEY=... pytest`` runs the suite
under the production defaults.
"""

import os

os.environ.setdefault("DEBUG", "1")

from config.settings import *  # noqa: E402, F403
