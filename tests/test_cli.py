"""The command line, run as users run it: `python -m model_constructor ...` in a subprocess.

The runs of the real entry point start together in a module fixture (as many at a time as
there are CPUs), since each pays for importing torch; the tests then read their results. The
other cases call the same `main` in this process. The checkout is importable through
PYTHONPATH, as for a submodule user; nothing is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from model_constructor import build_model, load_spec
from model_constructor.cli import main
from model_constructor.source import load_yaml_file

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed"
SEED_YAML = "configs/models/my_model.yaml"

BROKEN = """\
schema_version: 1
model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: 8, out_featres: 8}
    nodes:
      h1: {call: module:proj, args: [$x0]}
    outputs: [$h1]
"""

UNUSED = """\
schema_version: 1
model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
      spare: {_type_: nn.ReLU}
    nodes:
      h1: {call: module:proj, args: [$x]}
    outputs: [$h1]
"""

# Three nn.Linear(32768, 32768): 3.2 billion parameters, 12.9 GB in float32 if allocated.
BILLIONS = """\
schema_version: 1
params: {d: 32768}
model:
  graph:
    inputs: [x]
    modules:
      l1: {_type_: nn.Linear, in_features: "${params.d}", out_features: "${params.d}"}
      l2: {_type_: nn.Linear, in_features: "${params.d}", out_features: "${params.d}"}
      l3: {_type_: nn.Linear, in_features: "${params.d}", out_features: "${params.d}"}
    nodes:
      h1: {call: module:l1, args: [$x]}
      h2: {call: module:l2, args: [$h1]}
      h3: {call: module:l3, args: [$h2]}
    outputs: [$h3]
"""

FAILING_CONSTRUCTOR = """\
schema_version: 1
model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: -1, out_features: 8}
    nodes:
      h1: {call: module:proj, args: [$x]}
    outputs: [$h1]
"""

# A run of the billion-parameter summary reports its own peak memory.
_RSS_PROBE = (
    "import resource, runpy, sys; sys.argv = ['model-constructor', 'summary', sys.argv[1]]\n"
    "try:\n    runpy.run_module('model_constructor', run_name='__main__')\n"
    "except SystemExit as exit:\n"
    "    print('max_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "    raise\n"
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the seed project, plus the spec files the runs use."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(SEED, root / "seed", ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in [
        ("broken.yaml", BROKEN),
        ("unused.yaml", UNUSED),
        ("billions.yaml", BILLIONS),
        ("failing.yaml", FAILING_CONSTRUCTOR),
        ("not_yaml.yaml", "schema_version: [1\n"),
    ]:
        (root / name).write_text(text)
    # The copy `fmt` rewrites, next to the seed's blocks so that it still builds.
    shutil.copy(SEED / SEED_YAML, root / "seed" / "configs" / "models" / "to_format.yaml")
    shutil.copy(SEED / SEED_YAML, root / "seed" / "configs" / "models" / "checked.yaml")
    return root


def _commands(work: Path) -> dict[str, tuple[list[str], Path]]:
    """name -> (argv, working directory) of each run of the real entry point."""
    seed = work / "seed"
    command = [sys.executable, "-m", "model_constructor"]
    return {
        "validate_json": (
            [*command, "validate", "--format", "json", str(work / "broken.yaml"), "unused.yaml"],
            work,
        ),
        "summary": ([*command, "summary", "--format", "json", SEED_YAML], seed),
        "graph_mermaid": ([*command, "graph", SEED_YAML], seed),
        "fmt": ([*command, "fmt", "configs/models/to_format.yaml"], seed),
        "billions": ([sys.executable, "-c", _RSS_PROBE, str(work / "billions.yaml")], work),
    }


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def runs(work: Path) -> dict[str, Run]:
    """Every run's result; as many run at once as there are CPUs (each one imports torch)."""
    pending = list(_commands(work).items())
    running: dict[str, tuple[subprocess.Popen[str], float]] = {}
    results: dict[str, Run] = {}
    while pending or running:
        while pending and len(running) < (os.cpu_count() or 1):
            name, (argv, cwd) = pending.pop(0)
            process = subprocess.Popen(
                argv, cwd=cwd, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            running[name] = (process, time.monotonic())
        name = next(iter(running))
        process, start = running.pop(name)
        stdout, stderr = process.communicate(timeout=300)
        results[name] = Run(process.returncode, stdout, stderr, time.monotonic() - start)
    return results


@pytest.fixture
def seed_blocks(work: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The copied seed's `my_project` importable in this process, cwd in the copy."""
    monkeypatch.syspath_prepend(str(work / "seed"))
    monkeypatch.chdir(work / "seed")
    yield work / "seed"
    for name in [n for n in sys.modules if n == "my_project" or n.startswith("my_project.")]:
        del sys.modules[name]


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    """`main(args)` in this process: the same code as the entry point, without starting torch again."""
    start = time.monotonic()
    status = main(args)
    out, err = capsys.readouterr()
    return Run(status, out, err, time.monotonic() - start)


# ---- the real entry point, in subprocesses --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [("validate_json", 1), ("summary", 0), ("graph_mermaid", 0), ("fmt", 0), ("billions", 0)],
)
def test_cli_exit_status_and_no_traceback(runs: dict[str, Run], name: str, status: int) -> None:
    run = runs[name]

    assert run.returncode == status, run.stderr
    assert "Traceback" not in run.stderr


def test_cli_validate_json_diagnostics(runs: dict[str, Run], work: Path) -> None:
    diagnostics = json.loads(runs["validate_json"].stdout)

    assert diagnostics == [
        {
            "file": str(work / "broken.yaml"),
            "line": 6,
            "col": 49,
            "path": "model.graph.modules.proj.out_featres",
            "message": "unknown argument 'out_featres' for block 'nn.Linear'",
            "hint": "did you mean 'out_features'?",
            "severity": "error",
        },
        {
            "file": str(work / "broken.yaml"),
            "line": 8,
            "col": 38,
            "path": "model.graph.nodes.h1.args[0]",
            "message": "unknown reference '$x0'",
            "hint": "did you mean 'x'?",
            "severity": "error",
        },
        {
            "file": "unused.yaml",
            "line": 7,
            "col": 7,
            "path": "model.graph.modules.spare",
            "message": "module 'spare' is never called (it is still built and kept in state_dict)",
            "hint": None,
            "severity": "warning",
        },
    ]


def test_cli_summary_total_is_the_models_parameter_count(runs: dict[str, Run], seed_blocks: Path) -> None:
    summary = json.loads(runs["summary"].stdout)
    model = build_model(SEED_YAML)

    assert summary["total_parameters"] == sum(p.numel() for p in model.parameters())
    assert summary["modules"] == [
        {"module": "proj", "type": "nn.Linear", "parameters": 16512, "prefix": "proj."},
        {"module": "mix", "type": "my_project.token_mixer", "parameters": 16512, "prefix": "mix."},
    ]


def test_cli_summary_of_billions_of_parameters_allocates_none(runs: dict[str, Run]) -> None:
    run = runs["billions"]
    peak_kb = int(re.search(r"max_rss_kb (\d+)", run.stderr).group(1))  # type: ignore[union-attr]

    assert re.search(r"^total +3,221,323,776$", run.stdout, re.MULTILINE)
    # 12.9 GB if the weights were allocated; torch itself takes a few hundred MB.
    assert peak_kb < 1_500_000
    assert run.seconds < 120  # generous: CI machines may be busy; allocating 12.9 GB takes longer


def test_cli_graph_mermaid_names_every_node(runs: dict[str, Run]) -> None:
    assert runs["graph_mermaid"].stdout == (
        "flowchart TD\n"
        '    in_x(["x"])\n'
        '    node_h1["h1<br/>module:proj (nn.Linear)"]\n'
        '    node_h2["h2<br/>module:mix (my_project.token_mixer)"]\n'
        '    out_0(["output"])\n'
        "    in_x --> node_h1\n"
        "    node_h1 --> node_h2\n"
        "    node_h2 --> out_0\n"
    )


def test_cli_fmt_makes_the_seed_standard_yaml_that_builds_the_same_model(
    runs: dict[str, Run], seed_blocks: Path
) -> None:
    formatted = seed_blocks / "configs" / "models" / "to_format.yaml"
    original = (SEED / SEED_YAML).read_text()
    with pytest.raises(Exception, match="expected ',' or '}'"):
        YAML(typ="safe", pure=True).load(original)

    YAML(typ="safe", pure=True).load(formatted.read_text())  # parses now
    before, after = build_model(SEED_YAML), build_model(formatted)

    assert {k: v.shape for k, v in after.state_dict().items()} == {
        k: v.shape for k, v in before.state_dict().items()
    }
    assert after.code == before.code
    assert after.spec == before.spec
    assert runs["fmt"].stderr == "reformatted configs/models/to_format.yaml\n"
    # Only quotes were added: comments, layout and everything else are as written.
    assert formatted.read_text().replace('"', "") == original.replace('"', "")


# ---- in process: the same `main`, for everything else --------------------------------------------


def test_cli_validate_ok_is_quiet(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _main(["validate", SEED_YAML], capsys)

    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_cli_validate_prints_compiler_style_diagnostics(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = work / "broken.yaml"

    run = _main(["validate", str(broken)], capsys)

    assert run.returncode == 1
    assert run.stderr == (
        f"{broken}:6:49: error: model.graph.modules.proj.out_featres: unknown argument 'out_featres' "
        "for block 'nn.Linear' (did you mean 'out_features'?)\n"
        " 6 |       proj: {_type_: nn.Linear, in_features: 8, out_featres: 8}\n"
        "   |                                                 ^~~~~~~~~~~\n"
        f"{broken}:8:38: error: model.graph.nodes.h1.args[0]: unknown reference '$x0' "
        "(did you mean 'x'?)\n"
        " 8 |       h1: {call: module:proj, args: [$x0]}\n"
        "   |                                      ^~~\n"
        "2 errors\n"
    )


def test_cli_validate_override_with_unknown_path_is_located(
    seed_blocks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _main(["validate", "--set", "params.widht=64", SEED_YAML], capsys)

    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == (
        f"{SEED_YAML}:7:1: error: params: override 'params.widht': no key 'widht' in params "
        "(did you mean 'params.width'?)"
    )
    assert "note: set by override at <overrides>:1:1" in run.stderr


def test_cli_summary_table_with_override(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model(SEED_YAML, overrides={"params.width": 64})
    total = sum(p.numel() for p in model.parameters())

    run = _main(["summary", "--set", "params.width=64", SEED_YAML], capsys)

    assert run.stdout == (
        "module  type                    parameters  state_dict prefix\n"
        "-------------------------------------------------------------\n"
        "proj    nn.Linear                    4,160  proj.\n"
        "mix     my_project.token_mixer       4,160  mix.\n"
        "-------------------------------------------------------------\n"
        f"total                                {total:,}\n"
        "(8.32K parameters; built on the meta device, nothing allocated)\n"
    )


def test_cli_summary_constructor_failure_is_reported_cleanly(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _main(["summary", str(work / "failing.yaml")], capsys)

    assert run.returncode == 1
    assert run.stderr.startswith("error: RuntimeError: ")
    assert (
        f"note: while constructing model.graph.modules.proj (nn.Linear) at {work / 'failing.yaml'}:6:13"
        in (run.stderr)
    )


def test_cli_graph_dot(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dot = _main(["graph", "--format", "dot", SEED_YAML], capsys).stdout

    assert dot.startswith("digraph model {\n")
    for name in ("x", "h1\\nmodule:proj (nn.Linear)", "h2\\nmodule:mix (my_project.token_mixer)", "output"):
        assert f'[label="{name}"' in dot
    assert '"node_h1" -> "node_h2";' in dot


def test_cli_schema_written_to_file(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _main(["schema", "--import", "my_project.model_blocks", "-o", "schema.json"], capsys).returncode == 0
    )

    schema = json.loads((seed_blocks / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "block:my_project.token_mixer" in schema["$defs"]


def test_cli_schema_from_spec_checks_its_subgraph_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "model.yaml"
    spec.write_text(
        (ROOT / "examples" / "transformer_encoder.yaml")
        .read_text()
        .replace("_type_: graph:${params.layer}", "_type_: graph:post_norm")
    )
    monkeypatch.chdir(tmp_path)
    assert _main(["schema", "--spec", "model.yaml", "-o", "schema.json"], capsys).returncode == 0

    validator = jsonschema.Draft202012Validator(json.loads((tmp_path / "schema.json").read_text()))
    tree = load_yaml_file(spec).tree
    assert list(validator.iter_errors(tree)) == []
    tree["model"]["graph"]["nhaed"] = 4
    assert [(list(e.absolute_path), e.validator) for e in validator.iter_errors(tree)] == [
        (["model", "graph"], "additionalProperties")
    ]


def test_cli_schema_import_failure(capsys: pytest.CaptureFixture[str]) -> None:
    run = _main(["schema", "--import", "no_such_module"], capsys)

    assert run.returncode == 1
    assert run.stderr.startswith("error: imports[0]: cannot import 'no_such_module': ModuleNotFoundError")


def test_cli_fmt_check_changes_nothing(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _main(["fmt", "--check", "configs/models/checked.yaml"], capsys)

    assert run.returncode == 1
    assert run.stderr == "would reformat configs/models/checked.yaml\n1 of 1 files would be reformatted\n"
    assert (seed_blocks / "configs" / "models" / "checked.yaml").read_text() == (SEED / SEED_YAML).read_text()


def test_cli_dump_resolved_loads_back_equal(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _main(["dump", "--resolved", SEED_YAML], capsys).stdout
    dumped = seed_blocks / "configs" / "models" / "dumped.yaml"
    dumped.write_text(text)

    assert "${" not in text
    assert load_spec(dumped) == load_spec(SEED_YAML)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "no_such_file.yaml"], "no_such_file.yaml:1:1: error: <root>: cannot read spec file: "),
        (["validate", "not_yaml.yaml"], "not_yaml.yaml:2:1: error: <root>: YAML syntax error: "),
        (["graph", "not_yaml.yaml"], "not_yaml.yaml:2:1: error: <root>: YAML syntax error: "),
        (["dump", "no_such_file.yaml"], "no_such_file.yaml:1:1: error: <root>: cannot read spec file: "),
        (["fmt", "not_yaml.yaml"], "not_yaml.yaml:2:1: error: <root>: YAML syntax error: "),
        (["fmt", "no_such_file.yaml"], "no_such_file.yaml: error: cannot read: "),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_cli_bad_file_is_a_diagnostic(
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(work)

    run = _main(args, capsys)

    assert run.returncode == 1
    assert run.stderr.startswith(message)
    assert "Traceback" not in run.stderr


def test_cli_usage_error_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["validate"])
    assert exit.value.code == 2


def test_cli_main_fmt_check_passes_on_a_formatted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("schema_version: 1  # keep\nparams: {a: ${params.b}, b: 1}\n")

    assert main(["fmt", str(spec)]) == 0
    assert spec.read_text() == 'schema_version: 1  # keep\nparams: {a: "${params.b}", b: 1}\n'
    assert main(["fmt", "--check", str(spec)]) == 0
    assert capsys.readouterr().err == f"reformatted {spec}\n"


def test_cli_main_fmt_keeps_crlf_line_endings(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"schema_version: 1\r\nparams: {a: ${params.b}, b: 1}\r\n")

    assert main(["fmt", str(spec)]) == 0
    assert spec.read_bytes() == b'schema_version: 1\r\nparams: {a: "${params.b}", b: 1}\r\n'


def test_cli_main_set_without_equals_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["validate", "--set", "params.width", "spec.yaml"])

    assert exit.value.code == 2
    assert "argument --set: 'params.width' is not PATH=VALUE" in capsys.readouterr().err


def test_cli_main_dump_written_form_keeps_interpolations(
    seed_blocks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dump", "--set", "params.width=16", SEED_YAML]) == 0

    out = capsys.readouterr().out
    assert "params: {width: 16, dropout: 0.1}\n" in out
    assert '        in_features: "${params.width}"\n' in out


def test_cli_main_graph_names_nodes_of_subgraphs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            schema_version: 1
            model:
              graphs:
                block:
                  args: {width: {type: int}}
                  inputs: [x]
                  modules:
                    lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
                  nodes:
                    y: {call: module:lin, args: [$x]}
                  outputs: [$y]
              graph:
                inputs: [x]
                modules:
                  b: {_type_: "graph:block", width: 4}
                nodes:
                  out: {call: module:b, args: [$x]}
                outputs: {result: $out}
                return: dict
            """
        )
    )

    assert main(["graph", str(spec)]) == 0

    out = capsys.readouterr().out
    for line in (
        '    node_out["out<br/>module:b (graph:block)"]',
        '    out_0(["output result"])',
        '    subgraph block__graph["graph:block"]',
        '        block__node_y["y<br/>module:lin (nn.Linear)"]',
        "        block__in_x --> block__node_y",
    ):
        assert line in out.splitlines()


def test_cli_main_unexpected_exception_has_no_traceback_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr("model_constructor.schema.json_schema", broken)

    assert main(["schema"]) == 1
    assert capsys.readouterr().err == "error: KeyError: 'bug'\n"
    assert main(["--traceback", "schema"]) == 1
    assert "Traceback" in capsys.readouterr().err


def _readme_text_block(containing: str) -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```text\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if containing in b]
    return str(block)


def test_cli_readme_summary_output_matches(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _readme_text_block("state_dict prefix")

    assert _main(["summary", SEED_YAML], capsys).stdout == shown


def test_cli_readme_override_error_matches(seed_blocks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _readme_text_block("set by override")

    assert _main(["validate", "--set", "params.widht=256", SEED_YAML], capsys).stderr == shown


@pytest.mark.parametrize(
    "hook", YAML(typ="safe", pure=True).load((ROOT / ".pre-commit-hooks.yaml").read_text())
)
def test_cli_pre_commit_hook_runs_a_real_command(
    hook: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    program, *args = hook["entry"].split()

    assert program == "model-constructor"
    assert 'model-constructor = "model_constructor.cli:entry_point"' in (ROOT / "pyproject.toml").read_text()
    with pytest.raises(SystemExit) as exit:
        main([*args, "--help"])
    assert exit.value.code == 0
    assert re.search(hook["files"], "configs/models/my_model.yaml")
