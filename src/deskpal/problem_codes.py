"""Which problem codes each route can answer, read from the code it runs.

A route's handler, its dependencies and every deskpal function they call (followed through
module-level names: `service.update_ticket`, `tickets.get_ticket`) are parsed, and each
`raise SomeDeskpalError(...)` found records the error's status and code (a `code="..."` given at
the raise, else the class's). The OpenAPI document lists them per response (`x-problem-codes`
and the description), so that a client sees `ASSIGNMENT_NOT_ALLOWED` where it can happen without
anyone keeping a list by hand. Calls through objects (`ctx.db.get`) and other packages are not
followed; the problems every route can answer (validation, 415, database conflicts) are added by
the route's shape in openapi.py.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from deskpal.core.errors import DeskpalError

Problem = tuple[int, str]  # (status, code)


def _resolve(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        return getattr(owner, node.attr, None) if isinstance(owner, (ModuleType, type)) else None
    return None


def _error_class(target: Any) -> type[DeskpalError] | None:
    owner = getattr(target, "__self__", None)  # ValidationFailed.field(...) is a classmethod
    cls = owner if isinstance(owner, type) else target
    return cls if isinstance(cls, type) and issubclass(cls, DeskpalError) else None


def _raised(node: ast.Raise | ast.Return, names: dict[str, Any]) -> Problem | None:
    """A raised error, or one a factory returns for its caller to raise (`raise _missing()`)."""
    exc = node.exc if isinstance(node, ast.Raise) else node.value
    call = exc if isinstance(exc, ast.Call) else None
    cls = _error_class(_resolve(call.func if call else exc, names)) if exc is not None else None
    if cls is None:
        return None
    code = cls.code
    for keyword in call.keywords if call else []:
        if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
            code = str(keyword.value.value)
    return cls.status, code


def _is_ours(fn: Any) -> bool:
    return inspect.isfunction(fn) and (fn.__module__ or "").startswith("deskpal.")


@functools.cache
def _direct(fn: Callable[..., Any]) -> tuple[frozenset[Problem], tuple[Callable[..., Any], ...]]:
    """The problems `fn` raises itself, and the deskpal functions it calls."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return frozenset(), ()
    names = {**fn.__globals__, **_closure(fn)}
    problems, calls = set(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.Return)) and (found := _raised(node, names)):
            problems.add(found)
        elif isinstance(node, ast.Call):
            target = _resolve(node.func, names)
            if _is_ours(target):
                calls.append(target)
    return frozenset(problems), tuple(dict.fromkeys(calls))


def _closure(fn: Callable[..., Any]) -> dict[str, Any]:
    cells = fn.__closure__ or ()
    return {name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, cells, strict=False)}


def problems_of(entry_points: Iterator[Callable[..., Any]]) -> set[Problem]:
    """Every problem the functions can raise, following the deskpal functions they call."""
    found: set[Problem] = set()
    stack = [inspect.unwrap(fn) for fn in entry_points if _is_ours(inspect.unwrap(fn))]
    seen: set[Callable[..., Any]] = set()
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        problems, calls = _direct(fn)
        found |= problems
        stack.extend(c for c in calls if c not in seen)
    return found
