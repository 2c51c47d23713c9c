"""Analysis of study answers: the paper's tables and figures, plus CIs and tests.

The computing code lives in :mod:`apps.analysis.engine` and imports no Django;
the ``analyze`` management command and the results page are thin adapters.
"""
