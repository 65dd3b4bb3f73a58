"""RFC 6902 JSON Patch, with errors that name the operation and field instead of Python's repr."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer

from deskpal.core.errors import ValidationFailed

_MISSING = object()


def _field(pointer: Any) -> str:
    text = str(pointer or "").lstrip("/").replace("/", ".")
    return text or "body"


def _value_at(document: Any, pointer: Any) -> Any:
    try:
        return jsonpointer.resolve_pointer(document, str(pointer), _MISSING)
    except jsonpointer.JsonPointerException:
        return _MISSING


def apply_json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """The patched document; the first operation that cannot be applied is a 400 saying why.

    Operations are applied one at a time so that the error can say which one failed and what
    the document held at that point (jsonpatch's own messages print Python types and dicts).
    """
    for index, op in enumerate(operations):
        path, source = op.get("path"), op.get("from")
        where = f"operation {index} ({op.get('op')} {path})"
        try:
            document = jsonpatch.apply_patch(document, [op])
        except jsonpatch.JsonPatchTestFailed:
            current = _value_at(document, path)
            if current is _MISSING:
                raise ValidationFailed.field(
                    _field(path), f"{where} failed: there is no such field"
                ) from None
            raise ValidationFailed.field(
                _field(path),
                f"{where} failed: the value is {json.dumps(current)}, not {json.dumps(op.get('value'))}",
            ) from None
        except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException):
            missing = source if source is not None and _value_at(document, source) is _MISSING else path
            raise ValidationFailed.field(
                _field(missing), f"{where} cannot be applied: {missing} is not a field of this document"
            ) from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise ValidationFailed.field("body", f"{where} is not a valid operation: {exc}") from None
    return document
