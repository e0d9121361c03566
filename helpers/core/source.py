"""Showing the code a lesson relies on: :func:`show_source` is the one way the notebooks print a helper's source."""

from __future__ import annotations

import inspect


def source_text(obj, until: str | None = None) -> str:
    """The source of a function, class or method; cut before the first line that starts with ``until`` (after
    indentation) when given, e.g. ``until="def __post_init__"`` to show a dataclass's fields without its checks."""
    text = inspect.getsource(obj)
    if until is None:
        return text
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if i and line.lstrip().startswith(until):
            return "".join(lines[:i]).rstrip() + "\n"
    raise ValueError(f"{until!r} does not start a line of the source of {getattr(obj, '__qualname__', obj)!r}")


def show_source(obj, until: str | None = None) -> None:
    """Display the source of ``obj`` as highlighted Python in a notebook (plain text elsewhere): the helper *is*
    the lesson, and this shows what it does. ``until``: see :func:`source_text`."""
    from IPython.display import Code, display

    display(Code(source_text(obj, until), language="python"))


__all__ = ["show_source", "source_text"]
