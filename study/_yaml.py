"""Reading a config's YAML (a file, a preset or one ``--set`` value) the way a user means it, within bounds.

PyYAML's safe loader reads YAML 1.1, where ``1e-3`` is a string (the commonest way to
write a learning rate), ``0777`` is octal and ``1:30`` is ninety; it keeps the last of
two equal keys without a word; and it follows aliases, so 600 bytes can name billions of
values (the "billion laughs"), which every later step that walks the config would expand.
This loader reads numbers as YAML 1.2 does (``1e-3``, ``.5``, ``0x1F``, ``0o17``, ``.inf``;
the booleans and nulls stay PyYAML's), refuses a duplicate key, and refuses a document
larger than :data:`MAX_BYTES`, deeper than :data:`MAX_DEPTH` or holding more than
:data:`MAX_VALUES` values once its aliases are expanded, or one that contains itself.
Every refusal is a :class:`YamlProblem`, one line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: a config is a few hundred bytes; a megabyte is not a config
MAX_BYTES = 1 << 20
#: values (scalars, lists, mappings) in a document with its aliases expanded; the largest preset has about 100
MAX_VALUES = 100_000
#: levels of nesting; a study config has four
MAX_DEPTH = 32

_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
#: YAML 1.2 core schema: https://yaml.org/spec/1.2.2/#1032-tag-resolution
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class YamlProblem(ValueError):
    """Why a text is not a config this project reads: one line, without the file's name."""


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 numbers and no duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *base" then a key of its own overrides the base's on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_short(key)}", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_int_12(self, node) -> int:
        text = self.construct_scalar(node)
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)

    def construct_float_12(self, node) -> float:
        text = self.construct_scalar(node).lower()
        if text.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if text == ".nan":
            return float("nan")
        return float(text)


# YAML 1.1's number rules out, 1.2's in (ints first: the 1.2 float pattern also matches "12")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, _INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_12, list("-+.0123456789"))
_Loader.add_constructor(_INT, _Loader.construct_int_12)
_Loader.add_constructor(_FLOAT, _Loader.construct_float_12)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read(path: str) -> str:
    """The text of the file at ``path``, read no further than a config can need (``/dev/zero`` is not a
    config); OSError when it cannot be read, YamlProblem when it is too large or not UTF-8."""
    with open(path, "rb") as f:
        return decode(f.read(MAX_BYTES + 1))


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text (a byte-order mark dropped); YamlProblem naming the first byte that is not."""
    if len(data) > MAX_BYTES:
        raise YamlProblem(f"more than {MAX_BYTES} bytes; a config needs far fewer")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          "save the file as UTF-8") from None


def load(text: str) -> Any:
    """The one YAML document in ``text`` (``None`` when it holds none); YamlProblem when it cannot be a config."""
    if len(text) > MAX_BYTES:
        raise YamlProblem(f"more than {MAX_BYTES} characters; a config needs far fewer")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problem = " ".join(str(exc.problem or "").split())
        if problem.startswith("duplicate key"):
            raise YamlProblem(f"{problem}{where}; give each key once") from None
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise YamlProblem(f"not valid YAML{where} ({_short(problem, 120)[1:-1]})") from None
        raise YamlProblem(f"not valid YAML{where}") from None
    except yaml.YAMLError:
        raise YamlProblem("not valid YAML") from None
    except RecursionError:
        raise YamlProblem(f"nested deeper than a config can need ({MAX_DEPTH} levels at most)") from None
    except ValueError:  # a number of more digits than Python converts (sys.get_int_max_str_digits)
        raise YamlProblem("holds a number of thousands of digits; no config field takes one") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Refuse a document that expands (through its aliases) past the bounds, or that contains itself."""
    sizes: dict[int, int] = {}  # a node reached again through an alias is counted from here, not walked again
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlProblem(f"nested deeper than a config can need ({MAX_DEPTH} levels at most)")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            line = node.start_mark.line + 1 if node.start_mark else "?"
            raise YamlProblem(f"an alias at line {line} makes a value contain itself")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise YamlProblem(f"more than {MAX_VALUES} values once its aliases are expanded; "
                                  "a config needs far fewer (is an alias repeated on purpose?)")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 0)
