"""The core (``package/bin/defender_lineage_core``) speaks Graph only: it imports nothing of Splunk's and
names none of the add-on's Splunk sourcetypes. What Splunk calls the events of a Graph resource is
the adapter's (``defender_lineage_splunk/inputs.py``).

One exception, by design: lineage's shape table (``Shape(...)``'s ``sourcetypes``) recognises events
already in Splunk by their sourcetype, so it names sourcetypes to READ them, not to write them.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path
from typing import Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "package" / "bin" / "defender_lineage_core"
# Splunk's libraries and the add-on's Splunk-side modules (bin/defender_lineage_*.py, the splunk package).
SPLUNK_MODULES = ("splunk", "splunklib", "solnlib", "splunktaucclib", "import_declare_test")
ADAPTER_PREFIX = "defender_lineage_"


def add_on_sourcetypes() -> Set[str]:
    """Every sourcetype the add-on defines: props.conf's stanzas that are not ``source::`` or ``host::``."""
    props = configparser.RawConfigParser(strict=False, interpolation=None)
    props.read(ROOT / "package" / "default" / "props.conf")
    return {name for name in props.sections() if "::" not in name}


def recognition_table_strings(tree: ast.Module) -> Set[int]:
    """ids of the string nodes of lineage's ``Shape(name, layer, sourcetypes, ...)`` sourcetypes."""
    kept: Set[int] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Shape"):
            continue
        arguments = list(node.args[2:3]) + [k.value for k in node.keywords if k.arg == "sourcetypes"]
        kept.update(id(inner) for argument in arguments for inner in ast.walk(argument))
    return kept


def docstring_nodes(tree: ast.Module) -> Set[int]:
    nodes: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                nodes.add(id(first.value))
    return nodes


def core_strings() -> Iterator[Tuple[str, int, str]]:
    """(file, line, text) of every string constant in the core but lineage's recognition table (and the
    docstrings of lineage.py, which describe that table)."""
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = recognition_table_strings(tree) | docstring_nodes(tree) if path.name == "lineage.py" else set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
                yield path.name, node.lineno, node.value


def test_the_add_on_defines_the_sourcetypes_this_test_looks_for() -> None:
    # Not vacuous: the props.conf read finds the inputs' sourcetypes.
    assert {"ms:defender:graph:alert", "ms:defender:graph:incident", "ms:defender:graph:hunting"} <= (
        add_on_sourcetypes()
    )


def test_the_core_names_no_splunk_sourcetype() -> None:
    sourcetypes = add_on_sourcetypes()
    named: List[str] = [
        f"{name}:{line}: {st}" for name, line, text in core_strings() for st in sourcetypes if st in text
    ]
    assert named == [], "the core names Splunk sourcetypes; move them to defender_lineage_splunk/inputs.py"


def test_lineage_recognition_table_is_the_only_place_left_out() -> None:
    # The exception is narrow: lineage's table still names the inputs' sourcetypes (it reads them),
    # and the walk above does not see them.
    tree = ast.parse((CORE / "lineage.py").read_text(encoding="utf-8"))
    table = recognition_table_strings(tree)
    texts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) in table}
    assert "ms:defender:graph:alert" in texts
    assert not any("ms:defender:graph:alert" in text for name, _, text in core_strings() if name == "lineage.py")


def test_the_core_imports_nothing_of_splunk() -> None:
    imported: List[str] = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in SPLUNK_MODULES or (top.startswith(ADAPTER_PREFIX) and top != "defender_lineage_core"):
                    imported.append(f"{path.name}: {name}")
    assert imported == []
