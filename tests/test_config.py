from dataclasses import fields
import json
from pathlib import Path

import pytest
import yaml

from vqalab.config import DownloadParams, EvaluateParams, PreprocessParams, ReportParams, TrainParams, from_mapping
from vqalab.params import RESOLVED_ROOT, STAGE_PARAMS, Params, stage_dependencies
from vqalab.resolve import load_params
from vqalab.models.registry import chosen_family_config
from vqalab.models.resnet_bert import ResNetBertConfig

ROOT = Path(__file__).resolve().parents[1]


def write_params(tmp_path, **changes):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_load_into_typed_objects():
    params = load_params(ROOT / "params.yaml")
    assert params.model == "resnet_bert" and params.profile == "tiny" and params.dataset == "easy_vqa"
    assert isinstance(chosen_family_config(params), ResNetBertConfig)
    assert chosen_family_config(params).image_widths == (32, 64, 128, 256)
    assert params.sbert_model == "packaged:all-MiniLM-L6-v2"


def test_exponent_floats_written_by_dvc_exp_run_are_floats(tmp_path):
    path = write_params(tmp_path, resnet_bert__tiny__encoder_lr="5e-05")
    assert "encoder_lr: 5e-05" in path.read_text()
    assert chosen_family_config(load_params(path)).encoder_lr == 5e-05


def test_paper_profile_loads(tmp_path):
    params = load_params(write_params(tmp_path, profile="paper"))
    assert chosen_family_config(params).image_encoder == "resnet50" and chosen_family_config(params).image_size == 224
    assert params.sbert_model == "sentence-transformers/paraphrase-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "resnet_gpt"}, r"model = 'resnet_gpt' is not one of \['pubmedclip', 'qwen2vl', 'resnet_bert', 'vilt'\]"),
        ({"dataset": "coco"}, r"dataset = 'coco' is not one of \['daquar', 'easy_vqa', 'folder', 'path_vqa', 'slake', 'vqa_rad'\]"),
        ({"profile": "huge"}, r"profile = 'huge' is not one of"),
        ({"recipes__easy_vqa__train__max_epochs": 0}, r"train: max_epochs must be >= 1, got 0"),
        ({"dataset": "vqa_rad", "resnet_bert__tiny__batch_size": 0}, r"resnet_bert.tiny: batch_size must be >= 1, got 0"),
        ({"resnet_bert__tiny__batch_size": "64"}, r"resnet_bert.tiny.batch_size = '64' should be of type int"),
        ({"train__batch_size": 32}, r"train.batch_size is not a parameter: the training batch is resnet_bert.tiny.batch_size"),
        ({"train__epochs": 3}, r"unknown key\(s\) train.epochs"),
        ({"preprocess__val_fraction": 1.5}, r"val_fraction must be in \(0, 1\)"),
        ({"train__answer_part_credit": 1.0}, r"train: answer_part_credit must be in \[0, 1\), got 1.0"),
        ({"resnet_bert__tiny__image_encoder": "vgg"}, r"resnet_bert.tiny: image_encoder 'vgg' is not one of"),
        ({"dataset": "vqa_rad", "resnet_bert__tiny__image_size": 16}, r"image_size must be >= 32"),
        ({"recipes__easy_vqa__resnet_bert__tiny__image_size": 16}, r"resnet_bert.tiny: image_size must be >= 32"),
        ({"recipes__easy_vqa__train__epochs": 3}, r"recipes.easy_vqa.train.epochs sets train.epochs, which is not a parameter"),
        ({"recipes__easy_vqa__dataset": "vqa_rad"}, r"recipes.easy_vqa.dataset cannot be set by a recipe"),
        ({"model": "pubmedclip", "pubmedclip__tiny__text_training": "full"}, r"question_prior .* needs text_training frozen"),
        ({"seed": -1}, r"seed must be a non-negative integer"),
        ({"report__gallery_max_rows": 0}, r"report: gallery_max_rows must be >= 1, got 0"),
        ({"dataset": "vqa_rad", "datasets__vqa_rad__variant": "big"}, r"datasets.vqa_rad: variant must be one of"),
        ({"dataset": "daquar", "datasets__daquar__answers": 37}, r"datasets.daquar.answers = 37 should be of type str"),
        ({"dataset": "folder"}, r"needs datasets.folder.records"),
        ({"download__on_bad_record": "ignore"}, r"on_bad_record must be error or skip"),
        ({"model": "vilt", "vilt__tiny__lora": {"r": 0, "alpha": 16, "dropout": 0.0, "target_modules": ["query"]}},
         r"vilt.tiny.lora: lora.r must be >= 1, got 0"),
        ({"model": "vilt", "vilt__tiny__image_size": 72}, r"image_size 72 is not divisible by patch_size 16"),
        ({"model": "qwen2vl", "qwen2vl__tiny__mrope_section": [4, 4, 4]}, r"mrope_section \[4, 4, 4\] must sum to"),
    ],
)
def test_bad_params_fail_with_the_parameter_name(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        load_params(write_params(tmp_path, **change))


def test_recipes_fill_the_empty_values_and_a_written_value_wins(tmp_path):
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    recipes = defaults["recipes"]
    easy = load_params(write_params(tmp_path, resnet_bert__tiny__hidden_size=128))
    rad = load_params(write_params(tmp_path, dataset="vqa_rad", resnet_bert__tiny__hidden_size=128))
    # easy-VQA's own recipe over the default one; VQA-RAD has none of its own: the default.
    assert chosen_family_config(easy).image_size == recipes["easy_vqa"]["resnet_bert"]["tiny"]["image_size"] == 64
    assert easy.train.max_epochs == recipes["easy_vqa"]["train"]["max_epochs"] == 12
    assert chosen_family_config(easy).question_prior is False
    assert chosen_family_config(rad).image_size == recipes["default"]["resnet_bert"]["tiny"]["image_size"] == 224
    assert rad.train.max_epochs == recipes["default"]["train"]["max_epochs"] == 20
    # What no recipe sets comes from the section, for every data set.
    assert chosen_family_config(easy).hidden_size == chosen_family_config(rad).hidden_size == 128
    # A value written in its section (as `dvc exp run -S train.max_epochs=4` does) wins over every recipe.
    for dataset in ("easy_vqa", "vqa_rad"):
        written = load_params(write_params(tmp_path, dataset=dataset, train__max_epochs=4, resnet_bert__tiny__lr=0.01))
        assert (written.train.max_epochs, chosen_family_config(written).lr) == (4, 0.01)


def test_a_recipe_names_a_data_set_and_every_empty_value_gets_one(tmp_path):
    with pytest.raises(ValueError, match=r"recipes.vqarad names no data set; recipes may be \['daquar', 'default'"):
        load_params(write_params(tmp_path, recipes__vqarad={"train": {"max_epochs": 3}}))
    with pytest.raises(ValueError, match=r"train.max_epochs is `recipe` but no recipe sets it"):
        load_params(write_params(tmp_path, dataset="vqa_rad", recipes__default__train={"weight_decay": 0.05}))


SECTIONS = {"download": DownloadParams, "preprocess": PreprocessParams, "train": TrainParams,
            "evaluate": EvaluateParams, "report": ReportParams}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_params_yaml_is_the_one_source_of_every_section_value(section):
    """A section's dataclass has no defaults that could disagree with params.yaml: params.yaml sets
    every field, and a value left out of it fails, naming it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    given = {**params[section], **params["recipes"]["default"].get(section, {})}  # the recipe's values filled
    if section == "train":
        given["batch_size"] = 64  # the chosen family's (test_the_training_batch_is_the_familys)
    assert set(given) == {f.name for f in fields(SECTIONS[section])}
    for key in given:
        with pytest.raises(ValueError, match=rf"params: {section}\.{key} is missing"):
            from_mapping(SECTIONS[section], {k: v for k, v in given.items() if k != key}, section)


def test_the_train_stage_does_not_depend_on_its_run_controls():
    """How a run is started, resumed or compiled is not what it makes: changing it retrains nothing,
    though the stage reads it."""
    train = stage_dependencies("train")
    assert f"{RESOLVED_ROOT}.train.max_epochs" in train and f"{RESOLVED_ROOT}.family" in train
    assert not {f"{RESOLVED_ROOT}.train.{name}" for name in ("resume", "launcher", "compile")} & set(train)
    params = Params(load_params(ROOT / "params.yaml").values, stage="train")
    assert (params.train.resume, params.train.launcher, params.train.compile) == (False, "python", False)


def test_a_stage_reads_its_own_parameters_typed_and_no_others(tmp_path):
    resolved = tmp_path / "resolved.json"
    resolved.write_text(json.dumps({RESOLVED_ROOT: load_params(ROOT / "params.yaml").values}))
    train = Params.read(resolved, stage="train")
    assert isinstance(chosen_family_config(train), ResNetBertConfig) and isinstance(train.train, TrainParams)
    assert chosen_family_config(train).image_widths == (32, 64, 128, 256)  # typed again: lists back to tuples
    with pytest.raises(AttributeError, match=r"stage train reads 'report', which is not among its parameters"):
        train.report
    preprocess = Params.read(resolved, stage="preprocess")
    assert (preprocess.family.image_size, preprocess.family.resize) == (64, "squash")
    with pytest.raises(AttributeError, match=r"preprocess: family.lr is not among the stage's parameters"):
        preprocess.family.lr
    assert set(STAGE_PARAMS) == {"download", "preprocess", "features", "blind", "train", "evaluate", "report"}


def test_the_training_batch_is_the_familys(tmp_path):
    """The batch is set in one place, the family's section beside its learning rates (the paper
    profile trains on a GPU at its own batch), and the resolved train section shows it."""
    tiny = load_params(write_params(tmp_path))
    paper = load_params(write_params(tmp_path, profile="paper"))
    qwen = load_params(write_params(tmp_path, profile="paper", model="qwen2vl"))
    assert (tiny.train.batch_size, chosen_family_config(tiny).batch_size) == (64, 64)
    assert (paper.train.batch_size, chosen_family_config(paper).batch_size) == (256, 256)
    assert qwen.train.batch_size == qwen.values["train"]["batch_size"] == 16
    assert paper.train.section == "train"  # messages still name the real section
    with pytest.raises(ValueError, match=r"params: resnet_bert.paper: batch_size must be >= 1, got 0"):
        load_params(write_params(tmp_path, profile="paper", resnet_bert__paper__batch_size=0))


def test_text_lora_is_written_once_for_every_fusion_family(tmp_path):
    params = load_params(write_params(tmp_path, text_lora={"r": 4, "alpha": 8, "dropout": 0.0,
                                                            "target_modules": ["query"]}))
    assert chosen_family_config(params).text_lora.r == 4
    assert chosen_family_config(load_params(write_params(tmp_path, model="pubmedclip"))).text_lora.target_modules == ("query", "value")
