"""Queries across customers, raw SQL and raw connections stay in core/ and auth/, where they are few
and reviewed; elsewhere only inside a reviewed `all_tenants_maintenance` block.

The test reads the code (its syntax tree), not its words: a `text(` call under another name, an
`all_tenants` option spelled through a dict, or a connection taken from a session are found
however they are written, and a comment or a docstring that mentions them is not a violation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import deskpal

ROOT = Path(deskpal.__file__).parent
# Top-level packages that may use all of it: the tenancy machinery itself, authentication (which
# must find a key before it knows the tenant) and the migrations (DDL history).
ALLOWED = {"core", "auth", "migrations"}
# module -> the functions that may open all_tenants_maintenance (and use raw SQL inside it). Each
# was reviewed: it works on every customer's rows of a derived table, by nature.
REVIEWED_MAINTENANCE = {
    "tickets/counts.py": {"compact", "rebuild"},
    # Leasing the IMAP mailboxes that are due, whoever's: a compare-and-set UPDATE, like job claims.
    "email/inbound/polling.py": {"claim_due"},
}
# module -> the connection-shaped methods it calls on something that is not the database, reviewed;
# such a module may import neither SQLAlchemy nor deskpal (test below), so it holds no session.
NOT_THE_DATABASE = {
    "email/smtp.py": {"connect"},  # aiosmtplib's SMTP.connect: the mail server
}
RAW_SQL = {"text"}  # sqlalchemy functions that take SQL as a string
LITERAL_SQL = {"literal_column"}  # ... allowed when the string is one known token: a name, a number
CONNECTION_METHODS = {
    "connection",
    "connect",
    "begin",
    "raw_connection",
    "get_raw_connection",
    "exec_driver_sql",
}
CONNECTION_ATTRIBUTES = {"engine", "driver_connection", "dbapi_connection", "sync_connection"}
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2"}
ENGINE_FACTORIES = {"create_engine", "create_async_engine"}
_ONE_TOKEN = re.compile(r"\S+")


class _Checker(ast.NodeVisitor):
    def __init__(self, module: str, source: str) -> None:
        self.module = module
        self.found: list[str] = []
        self._function: list[str] = []
        self._maintenance = 0  # depth of all_tenants_maintenance blocks around the node
        self._sqlalchemy_names: dict[str, str] = {}  # local name -> sqlalchemy function it is
        self._sqlalchemy_modules: set[str] = set()  # local names of sqlalchemy (sub)modules
        self._constants: dict[str, object] = {}
        self._with_items: set[int] = set()  # the calls that open a with statement
        tree = ast.parse(source)
        for node in tree.body:  # module-level string constants, for literal_column(NAME)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self._constants[target.id] = node.value.value
        self.visit(tree)

    def _report(self, node: ast.AST, what: str) -> None:
        if self._maintenance:
            return
        self.found.append(f"{self.module}:{getattr(node, 'lineno', 0)}: {what}")

    # -- imports --------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            root = alias.name.split(".")[0]
            if root in DRIVERS:
                self._report(node, f"imports the database driver {alias.name}")
            if root == "sqlalchemy":
                self._sqlalchemy_modules.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        root = (node.module or "").split(".")[0]
        if root in DRIVERS:
            self._report(node, f"imports from the database driver {node.module}")
        if root == "sqlalchemy":
            for alias in node.names:
                # A function (text) or a module (sql, expression): called, or called through.
                self._sqlalchemy_names[alias.asname or alias.name] = alias.name
                self._sqlalchemy_modules.add(alias.asname or alias.name)

    # -- scopes ---------------------------------------------------------------------------------

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._function.append(node.name)
        self.generic_visit(node)
        self._function.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def _visit_with(self, node: ast.With | ast.AsyncWith) -> None:
        opens = any(self._is_maintenance(item.context_expr) for item in node.items)
        self._with_items.update(id(item.context_expr) for item in node.items)
        for item in node.items:
            self.visit(item)
        if opens:
            reviewed = REVIEWED_MAINTENANCE.get(self.module, set())
            if not self._function or self._function[0] not in reviewed:
                where = self._function[0] if self._function else "module level"
                self._report(node, f"all_tenants_maintenance in {where}, not a reviewed function")
            self._maintenance += 1
        for statement in node.body:
            self.visit(statement)
        if opens:
            self._maintenance -= 1

    visit_With = _visit_with
    visit_AsyncWith = _visit_with

    @staticmethod
    def _is_maintenance(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and _name(node.func) == "all_tenants_maintenance"

    # -- what is looked for ---------------------------------------------------------------------

    def _sqlalchemy_function(self, func: ast.AST) -> str | None:
        if isinstance(func, ast.Name):
            return self._sqlalchemy_names.get(func.id)
        if isinstance(func, ast.Attribute) and _root(func) in self._sqlalchemy_modules:
            return func.attr
        return None

    def visit_Call(self, node: ast.Call) -> None:
        function = self._sqlalchemy_function(node.func)
        if function in RAW_SQL:
            self._report(node, f"raw SQL: {function}()")
        elif function in LITERAL_SQL and not self._one_token(node):
            self._report(node, f"raw SQL: {function}() of more than one known token")
        elif function in ENGINE_FACTORIES:
            self._report(node, f"an engine of its own: {function}()")
        if self._is_maintenance(node) and id(node) not in self._with_items:
            # Opened by anything but a with statement (kept, passed on): not the reviewed shape.
            self._report(node, "all_tenants_maintenance outside a with statement")
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in CONNECTION_METHODS
            and node.func.attr not in NOT_THE_DATABASE.get(self.module, set())
        ):
            self._report(node, f"a raw connection: .{node.func.attr}()")
        for keyword in node.keywords:
            if keyword.arg == "all_tenants":
                self._report(node, "a query across tenants: all_tenants=")
        self.generic_visit(node)

    def _one_token(self, node: ast.Call) -> bool:
        if len(node.args) != 1:
            return False
        arg = node.args[0]
        value = self._constants.get(arg.id) if isinstance(arg, ast.Name) else None
        if isinstance(arg, ast.Constant):
            value = arg.value
        return isinstance(value, str) and _ONE_TOKEN.fullmatch(value) is not None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in CONNECTION_ATTRIBUTES:
            self._report(node, f"a raw connection: .{node.attr}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # **{"all_tenants": True}, or an options dict built elsewhere.
        if node.value == "all_tenants":
            self._report(node, "a query across tenants: 'all_tenants'")


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def violations(module: str, source: str) -> list[str]:
    """Each raw-SQL, raw-connection or cross-tenant use in a module outside core/ and auth/."""
    if module.split("/")[0] in ALLOWED:
        return []
    return _Checker(module, source).found


def test_cross_tenant_and_raw_sql_appear_only_in_core_auth_and_reviewed_maintenance() -> None:
    found = [
        line
        for path in sorted(ROOT.rglob("*.py"))
        for line in violations(path.relative_to(ROOT).as_posix(), path.read_text())
    ]
    assert not found, "move these into core/ (or a reviewed all_tenants_maintenance block):\n" + "\n".join(
        found
    )


def test_the_modules_that_call_something_else_connect_cannot_reach_the_database() -> None:
    for module in NOT_THE_DATABASE:
        tree = ast.parse((ROOT / module).read_text())
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            for name in (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
        }  # fmt: skip
        assert not imported & {"sqlalchemy", "deskpal", *DRIVERS}, (module, imported)


def test_the_reviewed_maintenance_functions_exist_and_use_the_block() -> None:
    """A reviewed entry that no longer exists would let a new function of that name in unseen."""
    for module, functions in REVIEWED_MAINTENANCE.items():
        tree = ast.parse((ROOT / module).read_text())
        defined = {
            node.name: node
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for function in functions:
            assert function in defined, f"{module}: {function} is reviewed but gone"
            assert any(
                _Checker._is_maintenance(item.context_expr)
                for node in ast.walk(defined[function])
                if isinstance(node, (ast.With, ast.AsyncWith))
                for item in node.items
            ), f"{module}: {function} no longer opens all_tenants_maintenance"


# Planted violations: each snippet must be caught, naming what it found.
_PLANTED = {
    "text": (
        "from sqlalchemy import text\nasync def f(s):\n    await s.execute(text('SELECT 1'))\n",
        "text()",
    ),
    "text renamed": ("from sqlalchemy import text as t\nq = t('DELETE FROM ticket')\n", "text()"),
    "text through the module": ("import sqlalchemy as sa\nq = sa.text('SELECT * FROM ticket')\n", "text()"),
    "text through sql": ("from sqlalchemy import sql\nq = sql.text('SELECT 1')\n", "text()"),
    "literal_column reading a table": (
        "from sqlalchemy import literal_column\nc = literal_column('(SELECT max(ticket_id) FROM ticket)')\n",
        "literal_column()",
    ),
    "literal_column of an unknown string": (
        "from sqlalchemy import literal_column\ndef f(x):\n    return literal_column(x)\n",
        "literal_column()",
    ),
    "exec_driver_sql": (
        "async def f(c):\n    await c.exec_driver_sql('DELETE FROM ticket')\n",
        ".exec_driver_sql()",
    ),
    "all_tenants option": ("s = select(T).execution_options(all_tenants=True)\n", "all_tenants="),
    "all_tenants through a dict": (
        "opts = {'all_tenants': True}\ns = select(T).execution_options(**opts)\n",
        "'all_tenants'",
    ),
    "a session's connection": (
        "async def f(ctx):\n    conn = await ctx.db.connection()\n    await conn.execute(q)\n",
        ".connection()",
    ),
    "the engine": ("async def f(db):\n    async with db.engine.connect() as c:\n        pass\n", ".engine"),
    "the driver": ("import asyncpg\n", "asyncpg"),
    "an engine of its own": (
        "from sqlalchemy.ext.asyncio import create_async_engine\ne = create_async_engine(u)\n",
        "create_async_engine()",
    ),
    "maintenance in an unreviewed function": (
        "from deskpal.core.maintenance import all_tenants_maintenance\n"
        "async def purge(db):\n"
        "    async with all_tenants_maintenance(db, 'x') as s:\n"
        "        await s.execute(text('DELETE FROM ticket'))\n",
        "not a reviewed function",
    ),
    "maintenance kept for later": (
        "from deskpal.core.maintenance import all_tenants_maintenance\n"
        "def compact(db):\n"
        "    return all_tenants_maintenance(db, 'x')\n",
        "outside a with statement",
    ),
}


@pytest.mark.parametrize("name", sorted(_PLANTED))
def test_the_checker_catches_a_planted_violation(name: str) -> None:
    source, what = _PLANTED[name]
    found = violations("tickets/planted.py", source)
    assert found and any(what in line for line in found), found


def test_the_checker_passes_what_is_allowed() -> None:
    clean = (
        "from sqlalchemy import literal_column, select\n"
        "FTS = 'ticket_message_fts'\n"
        "# text('SELECT 1') in a comment, and all_tenants in a docstring, are not code\n"
        "def f():\n"
        '    """Not execution_options(all_tenants=True)."""\n'
        "    return select(literal_column('1'), literal_column(FTS))\n"
    )
    assert violations("tickets/planted.py", clean) == []
    reviewed = (
        "from sqlalchemy import text\n"
        "from deskpal.core.maintenance import all_tenants_maintenance\n"
        "async def compact(db):\n"
        "    async with all_tenants_maintenance(db, 'fold') as s:\n"
        "        await s.execute(text('DELETE FROM ticket_count WHERE n = 0'))\n"
        "    await s.execute(text('SELECT 1'))\n"  # after the block: caught
    )
    assert [line.split(": ", 1)[1] for line in violations("tickets/counts.py", reviewed)] == [
        "raw SQL: text()"
    ]
    # core/ and auth/ may do all of it.
    assert violations("core/db.py", _PLANTED["text"][0]) == []
