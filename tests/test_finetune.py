"""Fine-tuning: a run started from a trained model keeps its layers and the output weights of the classes it shares
(by name), trains a new label set with a frozen encoder, and refuses a source whose inputs differ, naming the
fields; the shipped model is a source for configs/finetune.py."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from configs import demo, finetune as finetune_config  # noqa: E402
from emojax import checkpoints, features, finetune, models, protocols, synthetic, train  # noqa: E402
from emojax.inference import Predictor  # noqa: E402
from emojax.labels import EMOTIONS  # noqa: E402
from emojax.state import create_train_state  # noqa: E402

NEW = ("sadness", "excited", "neutral")  # "excited": anger, happiness, fear or surprise; calm and disgust left out
_EXCITED = {"anger", "happiness", "fear", "surprise"}


def _relabelled(corpus: protocols.Corpus) -> protocols.Corpus:
    """``corpus`` in the label set ``NEW``; clips of the emotions it leaves out are dropped."""
    names = np.array([{**{e: "excited" for e in _EXCITED}, "sadness": "sadness", "neutral": "neutral"}.get(e, "")
                      for e in np.asarray(EMOTIONS)[corpus.label]])
    kept = corpus.subset(np.flatnonzero(names != ""))
    label = np.array([NEW.index(n) for n in names[names != ""]], np.int64)
    return dataclasses.replace(kept, label=label, classes=NEW)


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_initialize_keeps_every_layer_and_the_output_weights_of_shared_classes(trained_workdir):
    source = finetune.load_source(str(trained_workdir))
    config = ml_collections.ConfigDict({**source.config.to_dict(), "labels": list(NEW)})
    fresh = create_train_state(config, models.create_model(config), 10)
    state, message = finetune.initialize(fresh, config, source)
    output = models.head_layers(state.params)[-1]
    old, new, drawn = (source.variables["params"][output], state.params[output], fresh.params[output])
    for j, name in enumerate(NEW):
        if name in EMOTIONS:
            np.testing.assert_array_equal(new["kernel"][:, j], old["kernel"][:, EMOTIONS.index(name)])
            np.testing.assert_array_equal(new["bias"][j], old["bias"][EMOTIONS.index(name)])
        else:
            np.testing.assert_array_equal(new["kernel"][:, j], drawn["kernel"][:, j])
    for name in state.params:
        if name != output:
            for u, v in zip(_leaves(state.params[name]), _leaves(source.variables["params"][name])):
                np.testing.assert_array_equal(u, v)
    for u, v in zip(_leaves(state.batch_stats), _leaves(source.variables["batch_stats"])):
        np.testing.assert_array_equal(u, v)
    assert "sadness, neutral; new: excited" in message


def test_a_new_label_set_trains_its_head_alone_with_a_frozen_encoder(tmp_path, trained_workdir, synthetic_data_dir,
                                                                     compilation_cache):
    config = demo.get_config()
    config.update(dict(data_dir=synthetic_data_dir, init_from=str(trained_workdir), freeze="encoder",
                       init_normalization="kept", epochs=1))
    splits = {name: _relabelled(split) for name, split in protocols.load_splits(config).items()}
    result = train.train_and_evaluate(config, tmp_path / "tuned", splits)
    assert result["class_names"] == list(NEW) and np.asarray(result["confusion_matrix"]).shape == (3, 3)
    tuned, state, normalization, _ = checkpoints.restore(tmp_path / "tuned")
    source = finetune.load_source(str(trained_workdir))
    assert tuple(tuned.labels) == NEW and tuned.freeze == "encoder"
    assert normalization.to_dict().keys() == source.normalization.to_dict().keys()
    for name, (mean, std) in normalization.statistics.items():  # init_normalization="kept"
        np.testing.assert_array_equal(mean, source.normalization.statistics[name][0])
        np.testing.assert_array_equal(std, source.normalization.statistics[name][1])
    head = models.head_layers(state.params)
    for name in state.params:
        moved = any(np.abs(u - v).max() > 0 for u, v in zip(_leaves(state.params[name]),
                                                              _leaves(source.variables["params"][name]))
                    ) if name != head[-1] else True
        assert moved == (name in head), name  # only the head trained
    for u, v in zip(_leaves(state.batch_stats), _leaves(source.variables["batch_stats"])):
        np.testing.assert_array_equal(u, v)  # the frozen encoder's statistics too
    clip = next(synthetic.generate("test"))
    prediction = Predictor.from_workdir(tmp_path / "tuned").predict(clip.audio, features.SAMPLE_RATE)
    assert set(prediction.probabilities) == set(NEW) and prediction.emotion in NEW


def test_a_source_with_other_input_windows_is_refused_naming_the_fields(trained_workdir):
    source = finetune.load_source(str(trained_workdir))
    config = demo.get_config()
    config.n_mfcc, config.widths = 40, (16, 32)
    with pytest.raises(train.TrainingError, match=r"n_mfcc: 25 there, 40 in this config; widths: .*"
                                                  r"--config.n_mfcc=25 --config.widths=16,32,32,32"):
        finetune.check_compatible(config, source)
    with pytest.raises(train.TrainingError, match="neither 'pretrained' nor a train.py workdir"):
        finetune.load_source(str(trained_workdir / "nothing"))


def test_the_shipped_model_is_the_source_of_the_finetune_recipe():
    config = finetune_config.get_config()
    config.datasets = ("custom/mine",)
    source = finetune.load_source(config.init_from)
    finetune.check_compatible(config, source)
    config = train.with_labels(config, EMOTIONS)
    state, message = finetune.initialize(create_train_state(config, models.create_model(config), 10), config, source)
    assert message.endswith("every layer, with all its classes")
    for u, v in zip(_leaves(state.params), _leaves(source.variables["params"])):
        np.testing.assert_array_equal(u, v)
