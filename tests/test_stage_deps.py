"""dvc.yaml's dependencies are right by construction: every vqalab module a stage script imports,
directly or through others (imports inside functions included), is among that stage's deps, and
every stage lists as its DVC parameters exactly the resolved parameters it reads."""

import ast
from pathlib import Path

import pytest
import yaml

from vqalab.models.registry import FAMILIES
from vqalab.params import STAGE_PARAMS, stage_dependencies

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(module: str) -> Path | None:
    path = SRC / Path(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(path: Path) -> set[str]:
    """vqalab modules ``path`` imports anywhere in its body, and the modules a registry names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from package import module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("vqalab."):
            found.add(node.value)  # a registry's lazily imported module
    return {m for m in found if m.split(".")[0] == "vqalab" and module_file(m) is not None}


def import_closure(script: Path) -> set[Path]:
    """The source files of every vqalab module ``script`` needs, the parent packages included."""
    todo, seen = list(imported_modules(script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += list(imported_modules(module_file(module)))
    return {module_file(m).relative_to(ROOT) for m in seen}


def stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def expand(dep: str) -> list[str]:
    """A dep naming a chosen data set or family stands for every one of them."""
    from vqalab.data.registry import DATASETS
    from vqalab.models.registry import FAMILIES

    return [dep.replace("${dataset}", d).replace("${model}", m) for d in DATASETS for m in FAMILIES]


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


@pytest.mark.parametrize("stage", sorted(stages()))
def test_every_imported_module_is_a_dependency(stage, capsys):
    spec = stages()[stage]
    script = Path(spec["cmd"].split("stages/", 1)[1].split()[0])
    deps = [d for dep in spec["deps"] for d in expand(dep)]
    assert f"stages/{script}" in spec["deps"], f"{stage} must depend on its own script"
    needed = import_closure(ROOT / "stages" / script)
    with capsys.disabled():
        print(f"\n{stage}: {len(needed)} modules: {', '.join(sorted(str(p.relative_to('src/vqalab')) for p in needed))}")
    missing = sorted(str(p) for p in needed if not covered(p, deps))
    assert not missing, f"stage {stage} imports {missing} but does not list them (or a folder above) in its deps"


@pytest.mark.parametrize("stage", sorted(STAGE_PARAMS))
def test_every_stage_tracks_exactly_the_resolved_parameters_it_reads(stage):
    spec = stages()[stage]
    assert spec["params"] == [{"data/params/resolved.json": stage_dependencies(stage)}]
    assert not [d for d in spec["deps"] if d.startswith("data/params")], f"{stage}: the resolved file is a params file"
    script = (ROOT / spec["cmd"].split()[1]).read_text(encoding="utf-8")
    assert f'Params.read(args.params, stage="{stage}")' in script, f"{stage} must read its own parameters"


def test_the_params_stage_tracks_all_of_params_yaml_and_writes_the_resolved_file():
    spec = stages()["params"]
    assert spec["params"] == [{"params.yaml": None}]
    assert [next(iter(o)) for o in spec["outs"]] == ["data/params/resolved.json"]
    assert set(stages()) == {"params", *STAGE_PARAMS}


@pytest.mark.parametrize("module", sorted(FAMILIES.values()))
def test_model_code_does_not_import_the_preprocessing_code(module):
    """A family's config checks its resize mode with vqalab.config.check_resize: a stage that builds
    a model does not depend on (nor import scikit-learn through) the preprocess stage's code."""
    assert Path("src/vqalab/data/preprocess.py") not in import_closure(module_file(module))
