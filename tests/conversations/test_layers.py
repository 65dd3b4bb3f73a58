"""The arrows run one way: conversations (and the channel adapters) -> messages -> tickets.

Read from the code (every import statement, at any depth, parsed with ast), not grepped. A new
message is built in one place (messages/insert.new_row) and its pending send recorded in one place
(conversations.send).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import deskpal

ROOT = Path(deskpal.__file__).parent

# Packages above each package: it must import none of them. The adapters (chat, helpdesk) hand
# messages to conversations, which stores them through messages, which builds on tickets.
ABOVE = {
    "tickets": {"messages", "conversations", "chat", "helpdesk"},
    "messages": {"conversations", "chat", "helpdesk"},
    "conversations": {"chat", "helpdesk"},
}
# (module, imported package's module) pairs allowed across the line, each with its reason.
EXCEPTIONS = {
    # The ticket list's full-text search reads the message table (its text is what is searched):
    # a read of a table, not a call into the messages domain.
    ("tickets/search.py", "deskpal.messages.models"): "search reads ticket_message",
    # Routes call the service that owns the step (STYLE: api -> service): the chat widget's route
    # lives under /api/Tickets, the TicketMessages create routes hand on to conversations.
    ("tickets/api.py", "deskpal.chat.service"): "the chat widget's route",
    ("messages/api.py", "deskpal.conversations.ticket_messages"): "the two create routes",
}


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from deskpal.messages import insert` imports deskpal.messages.insert; a name from a
            # module (`from deskpal.messages.insert import NewMessage`) starts with the module's.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _crossings() -> list[str]:
    found = []
    for package, above in ABOVE.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            module = str(path.relative_to(ROOT))
            for name in set(_imports(path)):
                parts = name.split(".")
                if parts[0] != "deskpal" or len(parts) < 2 or parts[1] not in above:
                    continue
                if any(name.startswith(allowed) for (m, allowed) in EXCEPTIONS if m == module):
                    continue
                found.append(f"{module} imports {name}")
    return sorted(found)


def test_no_package_imports_one_above_it() -> None:
    assert _crossings() == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    # The old chat intake hid its import of messages inside the function, to dodge the cycle.
    source = tmp_path / "hidden.py"
    source.write_text("def f():\n    from deskpal.messages.insert import NewMessage\n")
    assert set(_imports(source)) == {"deskpal.messages.insert.NewMessage"}


def _calls_and_assignments() -> Iterator[tuple[str, ast.AST]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            yield str(path.relative_to(ROOT)), node


def test_a_new_message_row_is_built_in_one_place() -> None:
    builders = {
        module
        for module, node in _calls_and_assignments()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "TicketMessage"
    }
    assert builders == {"messages/insert.py"}


def test_a_pending_send_is_recorded_in_one_place() -> None:
    writers = set()
    for module, node in _calls_and_assignments():
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                targets.extend(target.elts if isinstance(target, ast.Tuple) else [target])
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets.append(node.target)
        if any(isinstance(t, ast.Attribute) and t.attr == "send_pending" for t in targets):
            writers.add(module)
        if isinstance(node, ast.keyword) and node.arg == "send_pending":
            writers.add(module)
    # new_row writes the column False (not yet sent); send alone sets it; the mail sender clears it.
    assert writers == {"conversations/service.py", "messages/insert.py", "email/outbox.py"}
