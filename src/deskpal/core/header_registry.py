"""The standard library's mail header registry, with its header classes made once.

`email.headerregistry.HeaderRegistry.__getitem__` builds a new class (`type(...)`) every time a
header is parsed or counted, which made class creation the largest single cost of building and
parsing mail. The classes depend only on the header name, so each is made once here.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import BaseHeader, HeaderRegistry
from typing import Any, TypeVar

_P = TypeVar("_P", bound="email.policy.EmailPolicy[Any]")


class CachedHeaderRegistry(HeaderRegistry):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[Any]) -> None:
        super().map_to_type(name, cls)
        self._classes.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


def with_cached_headers(policy: _P) -> _P:
    """`policy` parsing headers through one CachedHeaderRegistry."""
    return policy.clone(header_factory=CachedHeaderRegistry())
