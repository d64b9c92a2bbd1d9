"""dvc.yaml's dependencies are right by construction: every stage lists as its deps exactly the
source files of the vqalab modules its script imports, directly or through others (imports inside
functions included; ``if TYPE_CHECKING`` blocks not), no more and no fewer; where a registry
imports only the chosen family or data set, the dep is ``src/vqalab/models/${model.name}.py`` or
``src/vqalab/data/${dataset.name}.py``, and what the chosen module imports counts for every choice.
Every stage lists as its DVC parameters exactly the keys of params.yaml it reads, and the packages
import each other without a cycle."""

import ast
from pathlib import Path

import pytest
import yaml

from vqalab.data.registry import DATASETS
from vqalab.models.registry import FAMILIES
from vqalab.params import STAGE_PARAMS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# A registry's lazily imported modules, as dvc.yaml names the chosen one.
REGISTRIES = {"vqalab.models.registry": (FAMILIES, "vqalab.models.${model}"),
              "vqalab.data.registry": (DATASETS, "vqalab.data.${dataset}")}
# How dvc.yaml templates the chosen module's name (params.yaml's model.name and dataset.name).
TEMPLATES = {"${model}": "${model.name}", "${dataset}": "${dataset.name}"}
PLACEHOLDERS = {placeholder: choices for choices, placeholder in REGISTRIES.values()}


def module_file(module: str) -> Path | None:
    path = SRC / Path(*module.split("."))
    if path.with_suffix(".py").is_file() or "${" in module:
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imported for type hints only)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(child) for statement in node.body for child in ast.walk(statement)}
    return skipped


def imported_modules(module: str | None, path: Path) -> set[str]:
    """vqalab modules ``path`` imports anywhere in its body; a registry imports its placeholder."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = type_checking_nodes(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from package import module
    if module in REGISTRIES:
        found.add(REGISTRIES[module][1])
    return {m for m in found if m.split(".")[0] == "vqalab" and module_file(m) is not None}


def import_closure(script: Path) -> set[str]:
    """Every vqalab module ``script`` needs (parent packages included), a chosen family or data set
    as its placeholder, with what each choice imports."""
    todo, seen = list(imported_modules(None, script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        if module in PLACEHOLDERS:
            todo += [m for choice in PLACEHOLDERS[module].values() for m in imported_modules(choice, module_file(choice))]
        else:
            todo += list(imported_modules(module, module_file(module)))
    chosen = {choice for m in seen if m in PLACEHOLDERS for choice in PLACEHOLDERS[m].values()}
    return seen - chosen


def source_files(modules: set[str]) -> set[str]:
    files = {str(module_file(m).relative_to(ROOT)) for m in modules}
    for placeholder, template in TEMPLATES.items():
        files = {f.replace(placeholder, template) for f in files}
    return files


def stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def script_of(spec: dict) -> Path:
    (script,) = [word for word in spec["cmd"].split() if word.startswith("stages/")]
    return ROOT / script


@pytest.mark.parametrize("stage", sorted(stages()))
def test_a_stage_runs_the_code_its_deps_hash(stage):
    """The project's src/ first on the path: a queued experiment runs its own copy of the code, the
    one DVC hashed, not whatever vqalab is installed (an editable install points at the workspace)."""
    assert stages()[stage]["cmd"].startswith(f"PYTHONPATH=src python stages/{stage}.py ")


@pytest.mark.parametrize("stage", sorted(stages()))
def test_every_stage_depends_on_exactly_the_code_it_imports(stage, capsys):
    spec = stages()[stage]
    script = script_of(spec)
    code = {d for d in spec["deps"] if d.startswith("src/")}
    needed = source_files(import_closure(script))
    with capsys.disabled():
        print(f"\n{stage}: {len(needed)} modules")
    assert str(script.relative_to(ROOT)) in spec["deps"], f"{stage} must depend on its own script"
    assert not needed - code, f"stage {stage} imports {sorted(needed - code)} but does not list them in its deps"
    assert not code - needed, f"stage {stage} lists {sorted(code - needed)} among its deps but does not import them"


def test_a_change_in_one_family_or_data_set_reruns_only_its_own_stages():
    """Only the registries name a family or data set module: dvc.yaml lists the chosen one."""
    for spec in stages().values():
        listed = {d for d in spec["deps"] if d.startswith("src/")}
        assert not {f"src/vqalab/models/{f}.py" for f in FAMILIES} & listed
        assert not {f"src/vqalab/data/{d}.py" for d in DATASETS} & listed


def test_the_wups_code_is_the_evaluate_stages_alone():
    """Fixing a WUPS detail rescores; it retrains nothing."""
    users = {name for name, spec in stages().items() if "src/vqalab/evaluation/wups.py" in spec["deps"]}
    assert users == {"evaluate"}


def test_packages_import_each_other_without_a_cycle():
    packages = {}
    for path in (SRC / "vqalab").rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        package = module.split(".")[1] if module.count(".") >= 2 else None
        if package is None:
            continue
        for imported in imported_modules(module, path):
            target = imported.split(".")[1] if imported.count(".") >= 1 else None
            if target and target != package and (SRC / "vqalab" / target).is_dir():
                packages.setdefault(package, set()).add(target)

    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt)))
                   for nxt in packages.get(start, ()))

    cycles = sorted(p for p in packages if reaches(p, p))
    assert not cycles, f"packages in an import cycle: {cycles} ({packages})"


@pytest.mark.parametrize("stage", sorted(STAGE_PARAMS))
def test_every_stage_tracks_exactly_the_parameters_it_reads(stage):
    """dvc.yaml lists STAGE_PARAMS, which is all a stage's ``Params`` gives it; its script reads them first."""
    spec = stages()[stage]
    assert spec["params"] == list(STAGE_PARAMS[stage])
    assert f'load_params(args.params, stage="{stage}")' in script_of(spec).read_text(encoding="utf-8")
    assert set(stages()) == {"validate", *STAGE_PARAMS}
    assert spec["deps"][0] == "data/validated", f"{stage} must come after the validate stage"


def test_the_validate_stage_reads_all_of_params_yaml_and_conf():
    """It reruns on any change of a value or of conf/, and its output is every other stage's first dep."""
    spec = stages()["validate"]
    assert spec["params"] == [{"params.yaml": None}] and "conf" in spec["deps"]
    assert [next(iter(o)) for o in spec["outs"]] == ["data/validated"]


def test_a_stage_reads_its_parameters_before_it_imports_torch():
    """The script's module-level imports are the light ones: a wrong value fails within a second."""
    for spec in stages().values():
        tree = ast.parse(script_of(spec).read_text(encoding="utf-8"))
        top = {alias.name if isinstance(node, ast.Import) else node.module
               for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        assert top <= {"logging", "os", "shlex", "subprocess", "sys", "pathlib", "vqalab.params", "vqalab.stage"}, top


@pytest.mark.parametrize("module", sorted(FAMILIES.values()))
def test_model_code_does_not_import_the_preprocessing_code(module):
    """A family's config checks its resize mode with vqalab.config.check_resize: a stage that builds
    a model does not depend on (nor import scikit-learn through) the preprocess stage's code."""
    assert "vqalab.data.preprocess" not in import_closure(module_file(module))
