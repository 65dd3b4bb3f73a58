"""Enumerations clients spell in any case, as the paths and query parameter names are matched."""

from __future__ import annotations

import enum


class CaseInsensitiveEnum(enum.StrEnum):
    """`phone`, `PHONE` and `Phone` are ChannelType.PHONE; the canonical spelling is what is stored."""

    @classmethod
    def _missing_(cls, value: object) -> CaseInsensitiveEnum | None:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None
