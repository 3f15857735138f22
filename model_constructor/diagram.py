"""The dataflow of a spec as a Mermaid or Graphviz (DOT) diagram, for docs and reviews.

Drawn from the resolved spec rather than from the built fx graph: the spec names every input,
node and output as the YAML does, where fx adds `getitem` nodes for `$h.0` and renames
clashes. Nothing is built, so a diagram of any size costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from .graph import Ref, parse_refs, refs_in
from .source import SourceMap
from .spec import GraphSpec, ModelSpec

DiagramFormat = Literal["mermaid", "dot"]
Shape = Literal["input", "node", "output"]


@dataclass
class _Cluster:
    """One graph: the model's, or a sub-graph's (drawn as a box of its own)."""

    title: str | None
    prefix: str  # of every id in it, so two graphs' nodes never clash
    items: list[tuple[str, str, Shape]] = field(default_factory=list)  # (id, label, shape)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, label)


def diagram(spec: ModelSpec, format: DiagramFormat) -> str:
    """The diagram of `spec`'s graph, and of each of its sub-graphs, in `format`."""
    top = spec.model.top_graph
    clusters = [_cluster(top, None, "")] if top is not None else []
    clusters += [
        _cluster(graph, f"graph:{name}", f"{name}__")
        for name, graph in spec.model.graphs.items()
        if graph is not top  # `model.graph` instantiates it: drawn once, as the model
    ]
    return _mermaid(clusters) if format == "mermaid" else _dot(clusters)


def _cluster(graph: GraphSpec, title: str | None, prefix: str) -> _Cluster:
    cluster = _Cluster(title, prefix)
    ids = {name: f"{prefix}in_{name}" for name in graph.inputs}
    for name in graph.inputs:
        cluster.items.append((ids[name], name, "input"))
    for name, node in graph.nodes.items():
        ids[name] = f"{prefix}node_{name}"
        label = f"{name}\n{node.call}"
        kind, _, target = node.call.partition(":")
        if kind == "module" and target in graph.modules:
            label += f" ({graph.modules[target].type_})"
        cluster.items.append((ids[name], label, "node"))
        for ref in _refs([node.args, node.kwargs]):
            cluster.edges.append((ids.get(ref.name, ref.name), ids[name], _index(ref)))
    outputs = graph.outputs.items() if isinstance(graph.outputs, dict) else enumerate(graph.outputs)
    single = not isinstance(graph.outputs, dict) and len(graph.outputs) == 1
    for index, (key, written) in enumerate(outputs):
        out_id = f"{prefix}out_{index}"
        cluster.items.append((out_id, "output" if single else f"output {key}", "output"))
        for ref in _refs(written):
            cluster.edges.append((ids.get(ref.name, ref.name), out_id, _index(ref)))
    cluster.edges = list(dict.fromkeys(cluster.edges))
    return cluster


def _refs(value: object) -> Iterator[Ref]:
    # A spec that passed its checks holds valid refs only; problems would be ignored here.
    parsed = parse_refs(value, (), SourceMap(), [])
    return (ref for ref, _ in refs_in(parsed))


def _index(ref: Ref) -> str:
    return ".".join(map(str, ref.index))


def _mermaid(clusters: list[_Cluster]) -> str:
    shapes = {"input": ('(["', '"])'), "node": ('["', '"]'), "output": ('(["', '"])')}
    lines = ["flowchart TD"]
    for cluster in clusters:
        indent = "    "
        if cluster.title is not None:
            lines.append(f'    subgraph {cluster.prefix}graph["{cluster.title}"]')
            indent = "        "
        for item_id, label, shape in cluster.items:
            left, right = shapes[shape]
            text = label.replace('"', "#quot;").replace("\n", "<br/>")
            lines.append(f"{indent}{item_id}{left}{text}{right}")
        for source, target, label in cluster.edges:
            arrow = f"-->|{label}|" if label else "-->"
            lines.append(f"{indent}{source} {arrow} {target}")
        if cluster.title is not None:
            lines.append("    end")
    return "\n".join(lines) + "\n"


def _dot(clusters: list[_Cluster]) -> str:
    shapes = {"input": "ellipse", "node": "box", "output": "ellipse"}
    lines = ["digraph model {", "    rankdir=TB;"]
    for number, cluster in enumerate(clusters):
        indent = "    "
        if cluster.title is not None:
            lines += [f"    subgraph cluster_{number} {{", f"        label={_quoted(cluster.title)};"]
            indent = "        "
        for item_id, label, shape in cluster.items:
            lines.append(f"{indent}{_quoted(item_id)} [label={_quoted(label)}, shape={shapes[shape]}];")
        for source, target, label in cluster.edges:
            attributes = f" [label={_quoted(label)}]" if label else ""
            lines.append(f"{indent}{_quoted(source)} -> {_quoted(target)}{attributes};")
        if cluster.title is not None:
            lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    # JSON string escaping is also DOT's: \" and \\, and \n is a line break in a label.
    return json.dumps(text, ensure_ascii=False)
