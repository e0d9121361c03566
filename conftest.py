"""Applies to every pytest run in the repository (unit tests and nbval over notebooks/).

Tests that need the real data sets read them from the mirror named by COURSE_DATA_DIR (CI points it at
../shared/data); when it is unset, the sibling folder ../shared/data is used if present."""

import os
from pathlib import Path

# the notebook lane: checks on each notebook nbval executes (inactive without --nbval / --nbval-lax);
# the order in which make test's workers take their work (inactive without --dist loadscope)
pytest_plugins = ["tests.nbval_lane", "tests.xdist_order"]

_SIBLING_MIRROR = Path(__file__).resolve().parent.parent / "shared" / "data"

if not os.environ.get("COURSE_DATA_DIR") and _SIBLING_MIRROR.is_dir():
    os.environ["COURSE_DATA_DIR"] = str(_SIBLING_MIRROR)
