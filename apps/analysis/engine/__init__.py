"""Pure analysis engine (numpy/pandas/scipy/matplotlib/krippendorff; no Django).

Public API::

    from apps.analysis.engine import AnalysisOptions, run_analysis, write_zip
    result = run_analysis("responses.csv", "out/", options=AnalysisOptions(n_boot=1000))
    result.files       # every file written
    with open("results.zip", "wb") as fh:
        write_zip("out/", fh)
"""

from .errors import AnalysisInputError
from .loading import REQUIRED_COLUMNS, Responses, load_responses
from .quality import QualityRules
from .runner import AnalysisOptions, AnalysisResult, run_analysis, write_zip

__all__ = [
    "REQUIRED_COLUMNS",
    "AnalysisInputError",
    "AnalysisOptions",
    "AnalysisResult",
    "QualityRules",
    "Responses",
    "load_responses",
    "run_analysis",
    "write_zip",
]
