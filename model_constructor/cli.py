"""The command line, `python -m model_constructor` or `model-constructor`: the pipeline for CI,
pre-commit and the shell.

    validate FILE...          check specs; compiler-style diagnostics, or --format json
    summary FILE              modules, block types and parameter counts, built on the meta device
    graph FILE                the dataflow as Mermaid or DOT
    schema                    the registry-aware JSON schema, for editors
    fmt FILE...               quote the ${...} that standard YAML rejects (--check for CI)
    dump FILE                 a spec as normalized YAML (--resolved: interpolations applied)

argparse (stdlib) rather than click or typer: the library depends on torch, pydantic and
ruamel.yaml only, and a command line is no reason to add a fourth dependency.

Exit status: 0 when all is well, 1 when an input has a problem (or `fmt --check` would change
a file), 2 for a usage error. A bad spec is reported as its diagnostics, never as a traceback;
so is an exception raised inside a block's constructor while `summary` builds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import Diagnostic, SpecError, SpecWarning, format_path

# NOTE: [Command imports]
# Each command imports what it runs, when it runs. `fmt` (a pre-commit hook) and `--help`
# need neither torch nor pydantic: with every command's imports at the top,
# `model-constructor fmt --check FILE` took 1.2 to 1.7 s here, nearly all of it importing
# torch; it takes about 0.15 s now.


def entry_point() -> None:
    """The `model-constructor` console script (and `python -m model_constructor`).

    The working directory goes on the import path, as `python -m` does, so a spec's `imports`
    (such as `my_project.model_blocks`) resolve from the project root under either command.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except SpecError as exc:
        _print_error(exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A block's own constructor failing while `summary` builds; or a bug of ours.
        if args.traceback:
            traceback.print_exc()
        else:
            _print_exception(exc)
        return 1


# ---- commands ---------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from .build import load_spec

    found: list[tuple[str, Diagnostic]] = []
    failed = False
    for file in args.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpecWarning)
            try:
                load_spec(file, **_load_options(args))
            except SpecError as exc:
                failed = True
                found += [(file, diagnostic) for diagnostic in exc.diagnostics]
                if args.format == "text":
                    _print_error(exc)
        for warning in caught:
            if isinstance(warning.message, SpecWarning) and warning.message.diagnostic is not None:
                found.append((file, warning.message.diagnostic))
                if args.format == "text":
                    print(warning.message, file=sys.stderr)
            else:
                warnings.showwarning(
                    warning.message, warning.category, warning.filename, warning.lineno, warning.file
                )
    if args.format == "json":
        print(json.dumps([_diagnostic_json(file, d) for file, d in found], indent=2))
    elif failed and len(args.files) > 1:
        bad = len({file for file, d in found if d.severity == "error"})
        print(f"{bad} of {len(args.files)} files have errors", file=sys.stderr)
    return 1 if failed else 0


def _summary(args: argparse.Namespace) -> int:
    from .build import build_model

    # On the meta device: parameters have shapes but no storage, so a config of billions of
    # parameters is summarized in seconds without allocating them.
    model = build_model(args.file, device="meta", **_load_options(args))
    top = model.spec.model.top_graph
    written = top.modules if top is not None else {}
    rows = [
        _Row(
            name,
            written[name].type_ if name in written else type(module).__name__,
            sum(p.numel() for p in module.parameters()),
            f"{name}.",
        )
        for name, module in model.named_children()
    ]
    total = sum(p.numel() for p in model.parameters())
    if args.format == "json":
        print(
            json.dumps(
                {
                    "file": args.file,
                    "modules": [row.__dict__ for row in rows],
                    "total_parameters": total,
                },
                indent=2,
            )
        )
    else:
        _print_table(rows, total, sys.stdout)
    return 0


def _graph(args: argparse.Namespace) -> int:
    from .build import load_spec
    from .diagram import diagram

    spec = load_spec(args.file, **_load_options(args))
    _write(diagram(spec, args.format), args.output)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .schema import json_schema, spec_schema

    if args.spec is not None:
        schema = spec_schema(args.spec, imports=args.imports)
    else:
        schema = json_schema(imports=args.imports)
    _write(json.dumps(schema, indent=args.indent, ensure_ascii=False) + "\n", args.output)
    return 0


def _fmt(args: argparse.Namespace) -> int:
    from .fmt import format_spec_text

    status = 0
    changed = 0
    for file in args.files:
        try:
            with open(file, encoding="utf-8", newline="") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{file}: error: cannot read: {exc}", file=sys.stderr)
            status = 1
            continue
        try:
            formatted = format_spec_text(text, file)
        except SpecError as exc:
            _print_error(exc)
            status = 1
            continue
        if formatted == text:
            continue
        changed += 1
        if args.check:
            print(f"would reformat {file}", file=sys.stderr)
            status = 1
        else:
            with open(file, "w", encoding="utf-8", newline="") as handle:
                handle.write(formatted)
            print(f"reformatted {file}", file=sys.stderr)
    if args.check and changed:
        print(f"{changed} of {len(args.files)} files would be reformatted", file=sys.stderr)
    return status


def _dump(args: argparse.Namespace) -> int:
    from .build import load_spec
    from .dump import dump_yaml
    from .load import load_tree

    options = _load_options(args)
    # Checked in full either way: a dump is a spec that builds.
    spec = load_spec(args.file, **options)
    written = spec if args.resolved else load_tree(args.file, options["overrides"])[0]
    _write(dump_yaml(written), args.output)
    return 0


# ---- helpers ----------------------------------------------------------------------------------


@dataclass
class _Row:
    module: str
    type: str
    parameters: int
    prefix: str


def _print_table(rows: list[_Row], total: int, out: TextIO) -> None:
    header = ("module", "type", "parameters", "state_dict prefix")
    cells = [(row.module, row.type, f"{row.parameters:,}", row.prefix) for row in rows]
    footer = ("total", "", f"{total:,}", "")
    widths = [max(len(line[i]) for line in (header, *cells, footer)) for i in range(4)]

    def line(values: Sequence[str]) -> str:
        first, kind, count, prefix = values
        return f"{first:<{widths[0]}}  {kind:<{widths[1]}}  {count:>{widths[2]}}  {prefix}".rstrip()

    rule = "-" * (sum(widths) + 6)
    print("\n".join([line(header), rule, *map(line, cells), rule, line(footer)]), file=out)
    print(f"({_human(total)} parameters; built on the meta device, nothing allocated)", file=out)


def _human(count: int) -> str:
    for size, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return str(count)


def _diagnostic_json(file: str, diagnostic: Diagnostic) -> dict[str, Any]:
    location = diagnostic.location
    return {
        "file": location.file if location else file,
        "line": location.line if location else None,
        "col": location.col if location else None,
        "path": format_path(diagnostic.path),
        "message": diagnostic.message,
        "hint": diagnostic.hint,
        "severity": diagnostic.severity,
    }


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"overrides": dict(args.set), "allowed_import_prefixes": args.allowed_import_prefixes}


def _assignment(text: str) -> tuple[str, Any]:
    """`--set PATH=VALUE`, parsed; a malformed one is a usage error (exit status 2)."""
    from .overrides import parse_assignment

    try:
        return parse_assignment(text)
    except (ValueError, SpecError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _print_error(exc: SpecError) -> None:
    print(exc, file=sys.stderr)


def _print_exception(exc: BaseException) -> None:
    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    for note in getattr(exc, "__notes__", []):
        print(f"  note: {note}", file=sys.stderr)


# ---- arguments --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-constructor",
        description="Check, summarize, draw and format model_constructor YAML specs.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the traceback of an unexpected exception"
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=run)
        return sub

    validate = command("validate", _validate, "check specs without building them; exit 1 on an error")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--format", choices=("text", "json"), default="text", help="diagnostics format")
    _spec_options(validate)

    summary = command("summary", _summary, "table of modules and parameter counts (built on meta)")
    summary.add_argument("file", metavar="FILE")
    summary.add_argument("--format", choices=("text", "json"), default="text")
    _spec_options(summary)

    graph = command("graph", _graph, "draw the spec's dataflow graph")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    _spec_options(graph)

    schema = command("schema", _schema, "print the JSON schema for editors, with every block's arguments")
    schema.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module whose register(registry) adds blocks (repeatable)",
    )
    schema.add_argument(
        "--spec",
        metavar="FILE",
        help="also check that spec's own sub-graph instances against their args (and use its imports)",
    )
    schema.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    schema.add_argument("--indent", type=int, default=None, help="indent the JSON (default: compact)")

    fmt = command("fmt", _fmt, "rewrite specs into standard YAML by quoting unquoted ${...}")
    fmt.add_argument("files", nargs="+", metavar="FILE")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")

    dump = command("dump", _dump, "write a spec back as normalized YAML")
    dump.add_argument("file", metavar="FILE")
    dump.add_argument("--resolved", action="store_true", help="with every ${...} interpolation applied")
    dump.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    _spec_options(dump)
    return parser


def _spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_assignment,
        metavar="PATH=VALUE",
        help="override a value before interpolation, e.g. params.width=256 (VALUE is YAML; "
        "prefix PATH with + to add a key); repeatable",
    )
    parser.add_argument(
        "--allow-import-prefix",
        dest="allowed_import_prefixes",
        action="append",
        default=None,
        metavar="PREFIX",
        help="trust only imports under PREFIX; the spec's own prefixes may narrow this (repeatable)",
    )
