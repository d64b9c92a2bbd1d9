"""The one configuration: conf/ composes params.yaml (as `dvc exp run` does), every choice composes
into parameters that validate, a wrong value fails naming its key, and a params.yaml that is not what
conf/ composes is refused with the command to run."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from configs import ROOT, composed_params

from vqalab.config import DownloadParams, EvaluateParams, PreprocessParams, ReportParams, RunControls, TrainParams
from vqalab.data.registry import DATASETS, chosen_dataset_config, get_dataset
from vqalab.models.family_configs import LoraSettings
from vqalab.models.registry import FAMILIES, chosen_family_config, get_config_class
from vqalab.params import (EXPERIMENT_ENV, GROUPS, PARAMS_FILE, STAGE_PARAMS, Params, check_composed, composed,
                           composed_text, load_params)
from vqalab.pipeline.validate import check_params

CONF = ROOT / "conf"
OPTIONS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml")) for group in GROUPS}


def typed(values: dict) -> Params:
    """Every section of ``values`` typed, as the stages type the ones they read."""
    params = Params(values)
    check_params(params)
    return params


def test_params_yaml_is_what_conf_composes_by_default():
    """The committed params.yaml is conf/'s default composition, byte for byte."""
    assert (ROOT / PARAMS_FILE).read_text() == composed_text(CONF, [])
    assert check_composed(yaml.safe_load((ROOT / PARAMS_FILE).read_text()), conf_dir=CONF) == {}


@pytest.mark.parametrize("overrides", [[], ["dataset=vqa_rad", "dataset.source=/data/rad", "model.lr=5e-5"],
                                       ["model=qwen2vl", "profile=paper"], ["strategy=partial", "seed=2"]])
def test_vqalab_composes_params_yaml_as_dvc_exp_run_does(overrides, tmp_path):
    """`dvc exp run -S ...` writes params.yaml with DVC's compose_and_dump: the same text."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(tmp_path / "params.yaml"), str(CONF), None, "config", "", overrides)
    assert (tmp_path / "params.yaml").read_text() == composed_text(CONF, overrides)


def test_the_registries_and_the_config_groups_name_the_same_choices():
    assert OPTIONS["dataset"] == sorted(DATASETS) and OPTIONS["model"] == sorted(FAMILIES)
    assert OPTIONS["profile"] == ["paper", "tiny"]
    assert {"default", "frozen", "partial", "full", "lora"} <= set(OPTIONS["strategy"])


@pytest.mark.parametrize("overrides", [
    *([f"dataset={d}"] for d in OPTIONS["dataset"]),
    *([f"model={m}", f"profile={p}"] for m in OPTIONS["model"] for p in OPTIONS["profile"]),
    *([f"model={m}", f"strategy={s}"] for m in ("resnet_bert", "pubmedclip") for s in OPTIONS["strategy"]),
])
def test_every_choice_composes_into_parameters_that_validate(overrides):
    values = composed_params(*overrides, *(["dataset.records=r.jsonl", "dataset.images=imgs"]
                                           if "dataset=folder" in overrides else []))
    params = typed(values)
    for override in overrides:
        group, option = override.split("=")
        assert (params.dataset, params.model, params.profile, params.strategy)[list(GROUPS).index(group)] == option


def test_no_config_class_has_a_default_that_could_disagree_with_conf():
    """conf/ gives every value: a field left out fails, naming it, instead of taking a default."""
    classes = [DownloadParams, PreprocessParams, TrainParams, RunControls, EvaluateParams, ReportParams, LoraSettings,
               *(get_config_class(m) for m in FAMILIES), *(get_dataset(d).config_class for d in DATASETS)]
    for cls in classes:
        defaults = [f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
        assert not defaults, f"{cls.__name__} has defaults for {defaults}"


def test_a_data_set_brings_its_recipe_and_a_value_given_with_s_wins():
    easy, rad = typed(composed_params()), typed(composed_params("dataset=vqa_rad"))
    # easy-VQA's 64 px shapes: its own schedule (conf/dataset/easy_vqa.yaml) and recipe
    # (conf/recipe/easy_vqa_resnet_bert_tiny.yaml); VQA-RAD: the family's own values.
    assert (easy.train.max_epochs, chosen_family_config(easy).image_size, chosen_family_config(easy).lr) == (12, 64, 2e-3)
    assert (rad.train.max_epochs, chosen_family_config(rad).image_size, chosen_family_config(rad).lr) == (20, 224, 5e-4)
    assert chosen_family_config(easy).hidden_size == chosen_family_config(rad).hidden_size == 256
    given = typed(composed_params("dataset=vqa_rad", "train.max_epochs=4", "model.lr=0.01", "model.encoder_lr=5e-5"))
    assert (given.train.max_epochs, chosen_family_config(given).lr) == (4, 0.01)
    assert chosen_family_config(given).encoder_lr == 5e-05  # written as 5.0e-05: a float, not text


def test_the_paper_profile_and_a_strategy_compose_with_the_recipe():
    paper = typed(composed_params("profile=paper"))
    config = chosen_family_config(paper)
    assert (config.image_encoder, config.image_size, config.text_encoder) == ("resnet50", 224, "bert-base-uncased")
    assert paper.sbert_model == "sentence-transformers/paraphrase-MiniLM-L6-v2" and paper.train.batch_size == 256
    partial = chosen_family_config(typed(composed_params("model=pubmedclip", "strategy=partial")))
    assert (partial.image_training, partial.text_training, partial.question_prior) == ("partial", "partial", False)
    assert partial.dropout == 0.1  # easy-VQA's recipe for pubmedclip still applies


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=resnet_gpt"], r"Could not find 'model/resnet_gpt'.*Available options.*pubmedclip"),
    (["dataset=coco"], r"Could not find 'dataset/coco'"),
    (["train.epochs=3"], r"Could not override 'train.epochs'"),
    (["model.batch_size=0"], r"params: model.batch_size must be a positive integer, got 0"),
    (["model.batch_size='64'"], r"params: model.batch_size must be a positive integer, got '64'"),
    (["model.lr=abc"], r"params: model.lr = 'abc' should be of type float"),
    (["+train.batch_size=32"], r"train.batch_size is not a parameter: the training batch is model.batch_size"),
    (["preprocess.val_fraction=1.5"], r"preprocess: val_fraction must be in \(0, 1\)"),
    (["train.answer_part_credit=1.0"], r"train: answer_part_credit must be in \[0, 1\), got 1.0"),
    (["model.image_encoder=vgg"], r"model: image_encoder 'vgg' is not one of"),
    (["dataset=vqa_rad", "model.image_size=16"], r"image_size must be >= 32"),
    (["model=pubmedclip", "model.text_training=full"], r"question_prior .* needs text_training frozen"),
    (["seed=-1"], r"seed must be a non-negative integer"),
    (["report.gallery_max_rows=0"], r"report: gallery_max_rows must be >= 1, got 0"),
    (["run.launcher=' '"], r"run: launcher must be a command"),
    (["dataset=vqa_rad", "dataset.variant=big"], r"dataset: variant must be one of"),
    (["dataset=daquar", "dataset.answers=37"], r"dataset.answers = 37 should be of type str"),
    (["dataset=folder"], r"needs dataset.records"),
    (["download.on_bad_record=ignore"], r"on_bad_record must be error or skip"),
    (["model=vilt", "model.lora={r:0,alpha:16,dropout:0.0,target_modules:[query]}"], r"model.lora: lora.r must be >= 1"),
    (["model=vilt", "model.image_size=72"], r"image_size 72 is not divisible by patch_size 16"),
    (["model=vilt", "strategy=partial"], r"strategy=partial sets which encoders of a fusion family \(resnet_bert, pubmedclip\) train .*model=vilt takes strategy=default"),
    (["model=qwen2vl", "model.mrope_section=[4,4,4]"], r"mrope_section \[4, 4, 4\] must sum to"),
])
def test_a_wrong_value_fails_naming_its_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        typed(composed(CONF, overrides))


def test_a_stage_reads_its_own_parameters_and_no_others():
    values = composed_params()
    train = Params(values, stage="train")
    assert isinstance(train.train, TrainParams) and train.train.batch_size == 64
    assert (train.train.resume, train.train.launcher, train.train.compile) == (False, "python", False)
    with pytest.raises(AttributeError, match=r"stage train reads 'report', which is not among its parameters"):
        train.report
    preprocess = Params(values, stage="preprocess")
    assert (preprocess.family.image_size, preprocess.family.resize) == (64, "squash")
    with pytest.raises(AttributeError, match=r"preprocess: model.lr is not among the stage's parameters"):
        preprocess.family.lr
    assert Params(values, stage="features").tracked() == {"model": values["model"], "seed": 0, "train.device": "auto"}
    assert set(STAGE_PARAMS) == {"download", "preprocess", "features", "blind", "train", "evaluate", "report"}


def write(tmp_path: Path, values: dict) -> Path:
    (tmp_path / "conf").symlink_to(CONF)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def test_a_params_yaml_edited_by_hand_is_refused_with_the_commands_to_run(tmp_path, monkeypatch):
    monkeypatch.delenv(EXPERIMENT_ENV, raising=False)
    values = composed_params()
    values["model"]["lr"] = 0.01
    with pytest.raises(ValueError) as failed:
        load_params(write(tmp_path, values), stage="train")
    message = str(failed.value)
    assert "is not what conf/ composes for dataset=easy_vqa model=resnet_bert profile=tiny strategy=default" in message
    assert "model.lr: 0.01 in" in message and "0.002 from conf/" in message
    assert "`vqalab compose`" in message and "`dvc exp run -S 'model.lr=0.01'`" in message


def test_inside_an_experiment_the_differences_are_its_s_values(tmp_path, monkeypatch, caplog):
    values = composed_params("dataset=vqa_rad", "model.lr=0.01")
    monkeypatch.setenv(EXPERIMENT_ENV, "abc123")
    caplog.set_level("INFO")
    params = load_params(write(tmp_path, values), stage="train")
    assert chosen_family_config(params).lr == 0.01
    assert "this experiment sets (dvc exp run -S):\n  model.lr: 0.01" in caplog.text


def test_a_params_yaml_left_behind_by_a_change_to_conf_is_refused(tmp_path, monkeypatch):
    """A key conf/ no longer composes (renamed or removed) is stale even inside an experiment."""
    monkeypatch.setenv(EXPERIMENT_ENV, "abc123")
    values = composed_params()
    values["train"]["epochs"] = 3
    with pytest.raises(ValueError, match=r"(?s)train.epochs: 3 in .*'<absent>' from conf/.*vqalab compose"):
        load_params(write(tmp_path, values))


def test_vqalab_compose_rewrites_params_yaml_keeping_its_choices_and_takes_no_values(tmp_path):
    from vqalab.compose import compose_params

    (tmp_path / "conf").symlink_to(CONF)
    path = tmp_path / "params.yaml"
    assert compose_params(path, {"dataset": "vqa_rad"})["dataset.name"] == (None, "vqa_rad")
    values = yaml.safe_load(path.read_text())
    values["model"]["lr"] = 0.5  # by hand
    path.write_text(yaml.safe_dump(values))
    changed = compose_params(path, {})  # the choices kept, the hand edit undone
    assert changed == {"model.lr": (0.5, 0.0005)} and yaml.safe_load(path.read_text())["dataset"]["name"] == "vqa_rad"
    assert path.read_text() == composed_text(CONF, ["dataset=vqa_rad", "model=resnet_bert", "profile=tiny",
                                                    "strategy=default"])
    with pytest.raises(ValueError, match=r"\['train.max_epochs'\] name no config group.*dvc exp run -S key=value"):
        compose_params(path, {"train.max_epochs": "4"})
