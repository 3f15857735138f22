"""`dump_yaml`: a spec as YAML text that loads back equal.

The output is standard YAML (every `${...}` quoted), so any YAML tool reads it, in the layout
people write by hand: block style for sections, one flow mapping per line for small leaves such
as a module or a node. It is a normalized rendering, not an edit: comments of a file are not
kept (`fmt` keeps them).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from .spec import ModelSpec

# A collection whose JSON form is at most this long is written on one line, in flow style.
FLOW_WIDTH = 88
# Strings that YAML 1.1 readers (PyYAML) take for booleans: quoted, so every reader agrees.
_YAML11_BOOLEANS = frozenset("y n yes no on off".split())


class _Representer(RoundTripRepresenter):
    """ruamel's, except that null is written `null` and every float with a `.` (`1.0e-05`):
    YAML 1.1 readers take `1e-05` for a string. A subclass, so ruamel's own stays as it is."""

    def represent_none(self, data: None) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")

    def represent_float(self, data: float) -> Any:
        text = repr(data)
        mantissa, e, exponent = text.partition("e")
        if not e or not math.isfinite(data):
            return super().represent_float(data)
        if "." not in mantissa:
            mantissa += ".0"
        return self.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}e{exponent}")


_Representer.add_representer(type(None), _Representer.represent_none)
_Representer.add_representer(float, _Representer.represent_float)


def dump_yaml(spec: ModelSpec | Mapping[str, Any]) -> str:
    """`spec` as YAML text: `load_spec` (or `ModelSpec.model_validate` of the loaded data) of
    the text gives back an equal spec.

    `spec` is a `ModelSpec` (such as `model.spec`, which is resolved) or a spec's plain data,
    written as it is (interpolations included).
    """
    data = spec.to_data() if isinstance(spec, ModelSpec) else spec
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # long lines stay on one line, as written
    stream = io.StringIO()
    yaml.dump(_styled(data, root=True), stream)
    return stream.getvalue()


def _styled(value: Any, root: bool = False) -> Any:
    """ruamel nodes for `value`: small collections in flow style, `${...}` strings quoted."""
    if isinstance(value, Mapping):
        node: CommentedMap | CommentedSeq = CommentedMap((str(k), _styled(v)) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        node = CommentedSeq(_styled(v) for v in value)
    elif isinstance(value, str) and ("${" in value or value.lower() in _YAML11_BOOLEANS):
        return DoubleQuotedScalarString(value)
    else:
        return value
    if not root and _flow_length(value) <= FLOW_WIDTH:
        node.fa.set_flow_style()
    else:
        node.fa.set_block_style()
    return node


def _flow_length(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        return FLOW_WIDTH + 1
