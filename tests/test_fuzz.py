"""Fuzzing: mutated specs either build or fail with a located SpecError; nothing else escapes.

Valid specs (the seed example, two built-in-only specs, one with sub-graphs and `_repeat_`)
are mutated as data (keys dropped, renamed or added, values retyped, refs pointed anywhere,
random scalars, huge numbers, deep nesting), then written as YAML or JSON, or passed as a
mapping that may also hold what only Python can (objects, tensors' dtypes, a dict holding
itself); as text (truncated, garbled, invalid UTF-8, lines duplicated, YAML syntax, anchors,
aliases, tags and directives spliced in); and as alias bombs.

Every build uses `device="meta"`, so a huge size reaching a constructor allocates nothing.
The one failure besides SpecError that the design allows is a block's own constructor raising
on values it was validly given (an unannotated parameter given a dict): that exception must
carry the "while constructing ... at file:line:col" note.

CI runs the bounded "ci" profile (derandomized, so CI is reproducible). A long campaign:

    python tools/fuzz_campaign.py --examples 13000 --jobs 2 --record

runs the "campaign" profile on every core and totals the figures (docs/reliability.md); in
one process, `HYPOTHESIS_PROFILE=campaign python -m pytest tests/test_fuzz.py`.
`MC_FUZZ_EXAMPLES` sets examples per test for the campaign; `MC_FUZZ_STATS=file` appends
each process's outcome counts to `file` as a JSON line; `MC_FUZZ_RECORD=file` records escapes
there (JSON lines) instead of failing, so that one run collects every distinct one.
"""

from __future__ import annotations

import atexit
import collections
import copy
import io
import json
import os
import pickle
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ruamel.yaml
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model_constructor import BuiltModel, ModuleSpec, SpecError, build_model

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed"
SEED_TEXT = (SEED / "configs" / "models" / "my_model.yaml").read_text()
TRUSTED = ["model_constructor.", "my_project."]

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, suppress_health_check=_HEALTH
)
settings.register_profile(
    "campaign",
    max_examples=int(os.environ.get("MC_FUZZ_EXAMPLES", "25000")),
    deadline=None,
    database=None,
    suppress_health_check=_HEALTH,
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ---- the specs mutated ----------------------------------------------------------------------

BUILTIN_TEXTS = [
    """\
schema_version: 1
params: {width: 4, heads: 2}
model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.width * 2}}
      act: {_type_: nn.GELU, approximate: tanh}
      norm: {_type_: nn.LayerNorm, normalized_shape: "${params.width // params.heads * 4}"}
    nodes:
      h1: {call: module:proj, args: [$x]}
      h2: {call: module:act, args: [$h1]}
      h3: {call: fn:torch.add, args: [$h1, $h2], kwargs: {alpha: 0.5}}
      h4: {call: method:transpose, args: [$h3, 0, 1]}
      h5: {call: module:norm, args: [$h3]}
    order: [h1, h2, h3, h4, h5]
    outputs: [$h5, $h4]
    return: tuple
""",
    """\
schema_version: 1
params:
  dim: 8
  name: attn
  sizes: [2, 3]
model:
  graph:
    inputs: [q, mask]
    modules:
      attn: {_type_: nn.MultiheadAttention, embed_dim: "${params.dim}", num_heads: 2, batch_first: true}
      enc:
        _type_: nn.TransformerEncoderLayer
        d_model: ${params.dim}
        nhead: 2
        dim_feedforward: 16
        batch_first: true
        activation: {_type_: nn.GELU}
      drop: {_type_: nn.Dropout, p: 0.25}
    nodes:
      a: {call: module:attn, args: [$q, $q, $q], kwargs: {need_weights: false}}
      e: {call: module:enc, args: [$a.0]}
      d: {call: module:drop, args: [$e]}
      s: {call: fn:torch.softmax, args: [$d], kwargs: {dim: -1}}
      m: {call: fn:torch.masked_fill, args: [$s, $mask, 0.0]}
      c: {call: fn:torch.cat, args: [[$m, $e]], kwargs: {dim: -1}}
    outputs: {probs: $m, both: $c}
    return: dict
""",
    """\
schema_version: 1
params: {width: 4, depth: 3}
model:
  graphs:
    block:
      args:
        width: int
        p: {type: float, default: 0.0}
      inputs: [x]
      modules:
        lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
        drop: {_type_: nn.Dropout, p: "${args.p}"}
      nodes:
        h: {call: module:lin, args: [$x]}
        o: {call: module:drop, args: [$h]}
      outputs: [$o]
    pair:
      args: {width: int}
      inputs: [x]
      modules:
        first: {_type_: "graph:block", width: "${args.width}"}
        second: {_type_: "graph:block", width: "${args.width}", p: 0.5}
      nodes:
        a: {call: module:first, args: [$x]}
        b: {call: module:second, args: [$a]}
      outputs: [$b]
  graph:
    inputs: [x]
    modules:
      stack: {_type_: "graph:block", _repeat_: "${params.depth}", width: "${params.width}"}
      both: {_type_: "graph:pair", width: "${params.width}"}
      proj: {_type_: nn.Linear, in_features: "${params.width}", out_features: "${params.width}"}
    nodes:
      s: {call: module:stack, args: [$x]}
      t: {call: module:both, args: [$s]}
      u: {call: fn:F.linear, args: [$t, $self.proj.weight]}
      v: {call: module:proj, args: [$u]}
    outputs: [$v]
""",
]

_YAML = ruamel.yaml.YAML(typ="safe", pure=True)


def _seed_trees() -> list[dict[str, Any]]:
    """The seed and built-in specs as data; interpolations become quoted strings."""
    trees = []
    for text in [SEED_TEXT, *BUILTIN_TEXTS]:
        quoted = []
        for line in text.splitlines():
            # Quote unquoted ${...} so that a standard YAML parser reads the text.
            out, i = "", 0
            while (j := line.find("${", i)) != -1:
                end = line.find("}", j)
                before = line[j - 1] if j else ""
                if before in "\"'":
                    out += line[i : end + 1]
                else:
                    out += line[i:j] + '"' + line[j : end + 1] + '"'
                i = end + 1
            quoted.append(out + line[i:])
        trees.append(_YAML.load("\n".join(quoted)))
    return trees


SEED_TREES = _seed_trees()
SEED_SOURCES = [SEED_TEXT, *BUILTIN_TEXTS]

# ---- outcomes ---------------------------------------------------------------------------------

STATS: collections.Counter[str] = collections.Counter()


def _write_stats() -> None:
    target = os.environ.get("MC_FUZZ_STATS")
    if target and STATS:
        with open(target, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), **STATS}) + "\n")


atexit.register(_write_stats)


class Escape(AssertionError):
    """An exception other than SpecError left the pipeline, or a diagnostic has no location."""


def _record(shown: Any, exc: BaseException) -> None:
    target = os.environ.get("MC_FUZZ_RECORD")
    if not target:
        raise Escape(f"{type(exc).__name__} escaped for {shown!r}") from exc
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "model_constructor" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    entry = {
        "type": type(exc).__name__,
        "message": str(exc)[:300],
        "where": where,
        "source": shown if isinstance(shown, str) else repr(shown)[:5000],
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }
    with open(target, "a") as out:
        out.write(json.dumps(entry) + "\n")
    STATS["escapes"] += 1


def _check_spec_error(exc: SpecError, file: str | None) -> None:
    if not exc.diagnostics:
        raise Escape("SpecError without diagnostics")
    str(exc)  # rendering must not fail
    pickle.loads(pickle.dumps(exc))
    if file is None:
        return
    for diagnostic in exc.diagnostics:
        loc = diagnostic.location
        if loc is None or loc.file != file or loc.line < 1 or loc.col < 1:
            raise Escape(f"diagnostic without a location in {file}: {diagnostic!r}")


def _is_constructor_failure(exc: BaseException, file: str | None) -> bool:
    """A block's own constructor raised: allowed, if the note names the module (and line)."""
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("while constructing ")]
    return bool(notes) and (file is None or f" at {file}:" in notes[0])


def build_outcome(source: Any, file: str | None, shown: Any = None) -> str:
    """Build `source`; return what happened, or record/raise an Escape (showing `shown`)."""
    shown = source if shown is None else shown
    STATS["cases"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(source, device="meta", allowed_import_prefixes=TRUSTED)
    except SpecError as exc:
        try:
            _check_spec_error(exc, file)
        except Escape as escape:
            _record(shown, escape)
            return "escape"
        STATS["spec_error"] += 1
        return "spec_error"
    except RecursionError as exc:
        _record(shown, exc)
        return "escape"
    except Exception as exc:
        if _is_constructor_failure(exc, file):
            STATS["constructor_error"] += 1
            STATS[f"constructor_error:{type(exc).__name__}"] += 1
            return "constructor_error"
        _record(shown, exc)
        return "escape"
    try:
        if not isinstance(model, BuiltModel) or len(model.fingerprint) != 64:
            raise Escape("a built model without a fingerprint")
        if list(model.module_fingerprints) != list(model._modules):
            raise Escape("module fingerprints do not name the model's modules")
    except Exception as exc:
        _record(shown, exc)
        return "escape"
    STATS["built"] += 1
    return "built"


@pytest.fixture(scope="module")
def spec_file() -> Iterator[Path]:
    """One file that every example overwrites; `my_project` (the seed's blocks) importable."""
    sys.path.insert(0, str(SEED))
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "spec.yaml"
    sys.path.remove(str(SEED))
    for name in [n for n in sys.modules if n == "my_project" or n.startswith("my_project.")]:
        del sys.modules[name]


def build_text(path: Path, text: str) -> str:
    # A lone surrogate becomes bytes that are not UTF-8: the loader must refuse those too.
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return build_outcome(path, str(path), text)


# ---- strategies -------------------------------------------------------------------------------

NAMES = [
    "x", "q", "mask", "h1", "h2", "h3", "a", "e", "proj", "mix", "act", "attn", "params", "width",
    "dim", "model", "graph", "inputs", "modules", "nodes", "outputs", "order", "return", "_type_",
    "call", "args", "kwargs", "self", "forward", "torch", "__class__", "0", "in_features",
]  # fmt: skip
INTERESTING_STRINGS = [
    "", " ", "$", "$$", "$$x", "$x", "$h1", "$h1.0", "$h1.key", "$a.0.1", "$.x", "$1x", "$x.", "${",
    "}", "${}", "${params}", "${params.width}", "${params.dim * 4}", "${params.width ** 100}",
    "${2 ** 2 ** 40}", "${'' * 2 ** 63}", "${'ab' * 10 ** 9}", "${params.name * 2 ** 62}",
    "${params.width // 0}", "${params.sizes}", "w${params.sizes}", "${params.missing}",
    "${__import__('os').system('true')}", "${params.width.__class__}", "${-" + "-" * 400 + "1}",
    "module:proj", "module:", "fn:torch.add", "fn:torch.load", "fn:os.system", "fn:builtins.eval",
    "graph:block", "graph:pair", "graph:nope", "${args.width}", "${index}", "$self.proj.weight",
    "$self.nope", "$self", "_repeat_", "_type_", "args",
    "method:relu", "method:__class__", "method:", "nn.Linear", "nn.GELU", "os.system",
    "builtins.eval", "torch.load", "subprocess.run", "my_project.token_mixer", "my_project.model_blocks",
    "model_constructor.torch_builtins", "single", "tuple", "dict", "tanh", "none", "\x00", "\ue000",
    "\ue000\ue100\ue001", "é", "\u2028", "x" * 300,
]  # fmt: skip
HUGE_NUMBERS = [
    2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**300, -(10**300), 10**4000,
    1e308, -1e308, 5e-324, float("inf"), float("-inf"), float("nan"), -0.0,
]  # fmt: skip

keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8))
refs = st.builds(
    lambda name, index: f"${name}{index}",
    st.sampled_from(NAMES),
    st.sampled_from(["", ".0", ".1", ".key", ".0.a", ".-1"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=300),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(INTERESTING_STRINGS),
    refs,
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=8,
)


def _nest(depth: int, leaf: Any, as_dict: bool) -> Any:
    for _ in range(depth):
        leaf = {"a": leaf} if as_dict else [leaf]
    return leaf


NOTHING: st.SearchStrategy[Any] = st.nothing()
deep_values = st.builds(_nest, st.integers(min_value=1, max_value=150), scalars, st.booleans())


def _paths(tree: Any) -> list[tuple[Any, ...]]:
    """Every path into `tree`, in document order; each container once (a Python spec may
    hold itself)."""
    out: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(tree, ())]
    while stack:
        value, path = stack.pop()
        out.append(path)
        if isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            items = list(value.items() if isinstance(value, dict) else enumerate(value))
            stack.extend((child, (*path, key)) for key, child in reversed(items))
    return out


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


@st.composite
def mutated_trees(draw: st.DrawFn, extra: st.SearchStrategy[Any] = NOTHING) -> dict[str, Any]:
    """A seed tree with one to four mutations; `extra` adds values to the random ones."""
    tree = json.loads(json.dumps(draw(st.sampled_from(SEED_TREES))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "replace", "rename", "insert", "dup", "deep", "wrap"]))
        if not path:
            if op in ("replace", "deep", "wrap"):
                tree = draw(values) if op == "replace" else {"model": tree}
            continue
        parent, last = _get(tree, path[:-1]), path[-1]
        if op == "drop":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(values | extra)
        elif op == "deep":
            parent[last] = draw(deep_values)
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"_type_": parent[last]}]))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif op == "insert":
            target = _get(tree, path)
            if isinstance(target, dict):
                target[draw(keys)] = draw(values | extra)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(values | extra))
        elif op == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return tree  # type: ignore[no-any-return]


def _dump(tree: Any, style: str) -> str:
    if style == "json":
        return json.dumps(tree, indent=1)
    yaml = ruamel.yaml.YAML(typ="safe", pure=True)
    yaml.default_flow_style = style == "flow"
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return str(stream.getvalue())


SNIPPETS = [
    "{", "}", "[", "]", ",", ":", ": ", "- ", "&a ", "*a", "<<: *a", "? ", "|", ">", "'", '"', "#",
    "%YAML 1.1\n---\n", "---\n", "...\n", "!!python/object/apply:os.system ['true'] ",
    "!!python/name:builtins.eval ", "!!binary aGk= ", "!custom ", "!!str ", "!!int ", "!!set ", "\t",
    "\n", "\n  ", "${", "${params.width}", "$", "$x", "2001-01-01", "0x1F", "1e400", ".nan", "~",
    "{a: 1, a: 2}", "[" * 80, "{a: " * 70, "\\", "\x00", "\ufeff", "\ue000", "é",
]  # fmt: skip


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """A seed text with one to three text edits."""
    text: str = draw(st.sampled_from(SEED_SOURCES))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        lines = text.splitlines(keepends=True)
        op = draw(st.sampled_from(["truncate", "delete", "insert", "insert", "dupline", "swap", "char"]))
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if op == "truncate":
            text = text[:at]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif op == "insert":
            snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=6)))
            text = text[:at] + snippet + text[at:]
        elif op == "char":
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        elif lines:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dupline":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


# ---- the tests --------------------------------------------------------------------------------


@PROFILE
@given(tree=mutated_trees(), style=st.sampled_from(["block", "flow", "json"]))
def test_fuzz_mutated_data_as_file(spec_file: Path, tree: dict[str, Any], style: str) -> None:
    build_text(spec_file, _dump(tree, style))


class _Opaque:
    """An object with no JSON or YAML form."""


def _holding_itself() -> dict[str, Any]:
    value: dict[str, Any] = {"_type_": "nn.Identity"}
    value["again"] = value
    return value


def _linear_spec(width: Any) -> Any:
    try:
        return ModuleSpec.model_validate({"_type_": "nn.Linear", "in_features": width, "out_features": 2})
    except ValueError:
        return width


# What only a spec written in Python can hold.
python_values = st.one_of(
    st.tuples(scalars, scalars),
    st.frozensets(st.integers(), max_size=3),
    st.binary(max_size=4),
    st.dictionaries(st.integers(), scalars, min_size=1, max_size=2),
    st.builds(_holding_itself),
    st.sampled_from([torch.float64, torch.device("cpu"), _Opaque(), complex(1, 2), 2**14100]),
    st.builds(_linear_spec, scalars),
)


@PROFILE
@given(tree=mutated_trees(extra=python_values))
def test_fuzz_mutated_data_as_mapping(spec_file: Path, tree: dict[str, Any]) -> None:
    # A mapping is the documented input type; anything else is the caller's TypeError.
    build_outcome(tree if isinstance(tree, dict) else {"model": tree}, None)


@PROFILE
@given(text=mutated_texts())
def test_fuzz_mutated_text(spec_file: Path, text: str) -> None:
    build_text(spec_file, text)


@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    """Anchors and aliases that expand widely or deeply, spliced under params."""
    width = draw(st.integers(min_value=1, max_value=12))
    levels = draw(st.integers(min_value=1, max_value=12))
    # Small expansions build, huge ones are refused while composing; those in between (up to
    # the limit of 10**6 values) are legal and take seconds to load: not in CI's budget.
    assume(width**levels <= 10**3 or width**levels > 10**7)
    lines = ["schema_version: 1", "params:", "  l0: &l0 " + draw(st.sampled_from(["[1]", "{a: 1}", "x"]))]
    for level in range(1, levels + 1):
        items = ", ".join([f"*l{level - 1}"] * width)
        shape = draw(st.sampled_from(["[{}]", "{{<<: [*l{prev}], k{lvl}: [{}]}}", "[[{}]]"]))
        lines.append(f"  l{level}: &l{level} " + shape.format(items, prev=level - 1, lvl=level))
    body = "\n".join(lines) + "\n"
    graph = SEED_SOURCES[1].split("model:", 1)[1]
    return body + "model:" + graph


@PROFILE
@given(text=alias_bombs())
def test_fuzz_alias_expansion(spec_file: Path, text: str) -> None:
    build_text(spec_file, text)
