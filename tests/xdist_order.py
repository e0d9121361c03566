"""The order in which ``make test``'s two workers take their work (a pytest-xdist scheduler, ``--dist loadscope``).

``loadscope`` hands out one *scope* at a time (a test module, or a notebook whose cells must run in order in one
kernel) and by default the scopes with the most items first. Item counts say little about time here: one worked
solutions notebook (a single test item) takes up to four minutes, a module of forty unit tests a few seconds. When a
long scope starts last, one worker runs it alone while the other idles; the last clean-clone run lost about
3½ minutes that way. So:

- each solutions notebook is a scope of its own (they share nothing), instead of one four-notebook scope;
- the long scopes go first: the solutions, the hub stand-in module (it executes three notebooks), then the
  notebooks, largest first; then the unit-test modules, which are short and fill the gaps at the end.

Inactive unless pytest runs with ``--dist loadscope`` (``make test``; ``make unit`` and a plain ``pytest`` are
unaffected).
"""

from __future__ import annotations

from collections import OrderedDict

import pytest

SEPARATE = ("tests/test_solutions.py::test_solution_runs_quick[",)  # items that are scopes of their own
LONG_MODULES = ("tests/test_hub_standins.py",)  # module scopes that execute whole notebooks


def scope_of(nodeid: str) -> str:
    """The scope of a test id: the id itself for :data:`SEPARATE` items, else loadscope's (module or class)."""
    if nodeid.startswith(SEPARATE):
        return nodeid
    return nodeid.rsplit("::", 1)[0]


def priority(scope: str, n_items: int) -> tuple[int, int]:
    """Sort key of a scope: lower goes first (long scopes first, then more items first)."""
    if scope.startswith(SEPARATE):
        rank = 0
    elif scope in LONG_MODULES:
        rank = 1
    elif scope.endswith(".ipynb"):
        rank = 2
    else:
        rank = 3
    return rank, -n_items


class LongFirstQueue(OrderedDict):
    """loadscope's work queue, except that ``popitem(last=False)`` takes the scope of lowest :func:`priority`."""

    def popitem(self, last: bool = True):
        if last or not self:
            return super().popitem(last=last)
        scope = min(self, key=lambda s: priority(s, len(self[s])))
        return scope, self.pop(scope)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LongFirstScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            self.workqueue = LongFirstQueue()

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return LongFirstScheduling(config, log)
