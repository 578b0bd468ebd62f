"""A YAML loader for recipes that refuses alias bombs before anything is expanded.

``yaml.safe_load`` shares the node an alias points to, so a 500-byte document can stand for billions
of values that only explode later (a deep copy, a JSON dump, validation). This loader composes the
node graph, counts aliases and the size the document would have once expanded, and refuses it then,
before any Python object is built. It also refuses a document nested deeper than ``MAX_DEPTH`` while
composing it (PyYAML composes recursively: ``[[[[...`` would end in a RecursionError) and a mapping
that repeats a key (PyYAML keeps the last one, silently).

``CoreLoader``, which ``safe_load`` uses for recipes, uploads and ``--set`` values, types only YAML 1.2
core-schema scalars (``true``/``false``, decimal numbers, ``null``/``~``), so ``1:1`` (a YAML 1.1
sexagesimal 61), ``no`` or ``2024-01-01`` stay text.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_ALIASES = 64  # a recipe rarely needs one; a few anchors for shared settings are fine
MAX_NODES = 100_000  # values in the expanded document
MAX_DEPTH = 200  # levels of nesting (a recipe has a handful)


class YAMLBudgetError(yaml.YAMLError):
    """The document uses more aliases, or would expand to more values, than allowed."""

    def __init__(self, problem: str, mark=None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class NestingError(YAMLBudgetError):
    """The document nests lists and mappings deeper than allowed (a malformed file, not an over-budget one)."""


class NumberTooLong(YAMLBudgetError):
    """An integer has more digits than Python converts (a malformed value, not an over-budget file)."""


class DuplicateKeyError(ComposerError):
    """A mapping names the same key twice (PyYAML would keep the last value, silently)."""


class _BudgetLoader(yaml.SafeLoader):
    def __init__(self, stream: str, max_aliases: int, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(stream)
        self.aliases_left = max_aliases
        self.max_depth = max_depth
        self.depth = 0

    def compose_node(self, parent, index):  # PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self.aliases_left -= 1
            if self.aliases_left < 0:
                raise YAMLBudgetError("too many aliases (*name): recipes may use a few, not this many",
                                      self.peek_event().start_mark)
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise NestingError(f"nested too deeply (over {self.max_depth} levels)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_mapping_node(self, anchor):  # PyYAML hook: a repeated key is an error, not "last one wins"
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for i, (key, _) in enumerate(node.value):
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" merges, and the mapping's own keys override it: not a repeat
            first = seen.setdefault((key.tag, key.value), i)
            if first != i:
                line = node.value[first][0].start_mark.line + 1
                raise DuplicateKeyError(None, None, f"duplicate key {key.value!r} (first at line {line})", key.start_mark)
        return node


# YAML 1.2 core-schema scalars, the only plain values CoreLoader types (PyYAML's 1.1 resolver also reads
# sexagesimal 1:1 as 61, 012 as octal 10, yes/no/on/off as booleans). A decimal with a leading zero stays text.
_CORE: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    ("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), "-+0123456789"),
    ("tag:yaml.org,2002:float",
     re.compile(r"^[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), "-+.0123456789"),
]
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


class CoreLoader(_BudgetLoader):
    """The budgeted loader with YAML 1.2 core-schema typing of plain scalars (everything else is text)."""

    yaml_implicit_resolvers: dict = {}


for _tag, _regexp, _first in _CORE:
    CoreLoader.add_implicit_resolver(_tag, _regexp, list(_first))
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class CoreDumper(yaml.SafeDumper):
    """PyYAML's safe dumper that also quotes text ``CoreLoader`` would type (``1e5``, ``0E0``: text to PyYAML's
    1.1 resolver, a float to the core schema), so what ecomforge writes (a run's recipe.yaml) reads back the same."""


for _tag, _regexp, _first in _CORE:
    CoreDumper.add_implicit_resolver(_tag, _regexp, list(_first))


def safe_dump(data: Any, **options: Any) -> str:
    """YAML text of plain data (``yaml.safe_dump``'s options) that ``safe_load`` reads back as it was."""
    return yaml.dump(data, Dumper=CoreDumper, **options)


def core_scalar(text: str) -> Any:
    """``text`` typed as a YAML 1.2 core-schema plain scalar: a bool, an int, a float, None, else the text itself."""
    for tag, regexp, _ in _CORE:
        if regexp.match(text):
            kind = tag.rsplit(":", 1)[1]
            if kind == "int" and (problem := too_many_digits(text)):
                raise ValueError(problem)
            return text.lower() == "true" if kind == "bool" else int(text) if kind == "int" else float(text)
    return None if _NULL.match(text) else text


def expanded_size(node: Node, limit: int, max_depth: int = MAX_DEPTH) -> int:
    """How many values ``node`` holds once every alias is expanded (counting stops past ``limit``)."""
    memo: dict[int, int] = {}

    def size(n: Node, depth: int) -> int:
        if id(n) in memo:
            return memo[id(n)]
        if depth > max_depth:
            raise NestingError(f"nested too deeply (over {max_depth} levels)", n.start_mark)
        memo[id(n)] = limit + 1  # a node inside itself (a recursive alias) is over any budget
        total = 1
        if isinstance(n, SequenceNode):
            children = n.value
        elif isinstance(n, MappingNode):
            children = [x for pair in n.value for x in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > limit:
                break
        memo[id(n)] = total
        return total

    return size(node, 0)


def int_digits_limit() -> int:
    """The most digits Python turns into an int (``sys.get_int_max_str_digits``; 0 there means no limit)."""
    import sys

    get = getattr(sys, "get_int_max_str_digits", None)
    return (get() if get else 0) or 0


def too_many_digits(text: str) -> str | None:
    """Why decimal ``text`` cannot be an int (more digits than Python converts), or None."""
    limit = int_digits_limit()
    digits = sum(ch.isdigit() for ch in text)
    if limit and digits > limit and not text.strip().lstrip("+-").lower().startswith(("0x", "0o", "0b")):
        return f"a number of {digits} digits: more than {limit} digits, which is as long as a number may be"
    return None


def _check_numbers(node: Node) -> None:
    """Refuse an int scalar too long for Python to convert, naming its key and line (not a bare ValueError)."""
    seen: set[int] = set()

    def visit(n: Node, key: str) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        if isinstance(n, ScalarNode):
            problem = too_many_digits(n.value) if n.tag == "tag:yaml.org,2002:int" else None
            if problem:
                raise NumberTooLong(f"{key}: {problem}" if key else problem, n.start_mark)
        elif isinstance(n, SequenceNode):
            for i, child in enumerate(n.value):
                visit(child, f"{key}.{i}" if key else str(i))
        elif isinstance(n, MappingNode):
            for k, v in n.value:
                visit(k, key)
                name = str(k.value) if isinstance(k, ScalarNode) else "?"
                visit(v, f"{key}.{name}" if key else name)

    visit(node, "")


def safe_load(text: str, *, max_aliases: int = MAX_ALIASES, max_nodes: int = MAX_NODES,
              max_depth: int = MAX_DEPTH, yaml11: bool = False) -> Any:
    """``yaml.safe_load`` with a budget: aliases, nesting and expanded size are checked on the node graph, before
    building; a repeated key is refused. Plain scalars are typed by the YAML 1.2 core schema (``CoreLoader``),
    so a recipe's ``canvas: 16:9`` is the text 16:9, not the sexagesimal 969, and ``name: 2024-01-01`` a name.
    ``yaml11``: PyYAML's own typing instead, for a file PyYAML wrote (a run folder's recipe.yaml), with the same
    budget: a run folder from elsewhere is no more trusted than a recipe."""
    loader = (_BudgetLoader if yaml11 else CoreLoader)(text, max_aliases, max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node, max_nodes, max_depth) > max_nodes:
            raise YAMLBudgetError(f"expands to over {max_nodes} values (aliases repeat too much)", node.start_mark)
        _check_numbers(node)
        return loader.construct_document(node)
    except RecursionError as exc:  # the depth check comes first; this is the backstop for any other recursion
        raise NestingError(f"nested too deeply (over {max_depth} levels)") from exc
    finally:
        loader.dispose()
