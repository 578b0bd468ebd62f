"""A YAML loader for recipes that refuses alias bombs before anything is expanded.

``yaml.safe_load`` shares the node an alias points to, so a 500-byte document can stand for billions
of values that only explode later (a deep copy, a JSON dump, validation). This loader composes the
node graph, counts aliases and the size the document would have once expanded, and refuses it then,
before any Python object is built.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_ALIASES = 64  # a recipe rarely needs one; a few anchors for shared settings are fine
MAX_NODES = 100_000  # values in the expanded document


class YAMLBudgetError(yaml.YAMLError):
    """The document uses more aliases, or would expand to more values, than allowed."""

    def __init__(self, problem: str, mark=None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BudgetLoader(yaml.SafeLoader):
    def __init__(self, stream: str, max_aliases: int) -> None:
        super().__init__(stream)
        self.aliases_left = max_aliases

    def compose_node(self, parent, index):  # PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self.aliases_left -= 1
            if self.aliases_left < 0:
                raise YAMLBudgetError("too many aliases (*name): recipes may use a few, not this many",
                                      self.peek_event().start_mark)
        return super().compose_node(parent, index)


def expanded_size(node: Node, limit: int) -> int:
    """How many values ``node`` holds once every alias is expanded (counting stops past ``limit``)."""
    memo: dict[int, int] = {}

    def size(n: Node, depth: int) -> int:
        if id(n) in memo:
            return memo[id(n)]
        if depth > 200:
            raise YAMLBudgetError("nested too deeply (over 200 levels)", n.start_mark)
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


def safe_load(text: str, *, max_aliases: int = MAX_ALIASES, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` with a budget: aliases and expanded size are checked on the node graph, before building."""
    loader = _BudgetLoader(text, max_aliases)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node, max_nodes) > max_nodes:
            raise YAMLBudgetError(f"expands to over {max_nodes} values (aliases repeat too much)", node.start_mark)
        return loader.construct_document(node)
    finally:
        loader.dispose()
