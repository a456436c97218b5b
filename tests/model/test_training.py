import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch

from tiny_imdb import REPO_ROOT, TINY_TRAINING_ARGS


def test_training_reports_curves_confusion_matrix_and_validation_metrics(tiny_training):
    metrics = json.loads((tiny_training / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] >= 0.9  # the tiny data is easy: it must learn it
    assert metrics["validation_reviews"] + metrics["train_reviews"] == 300
    assert sum(map(sum, metrics["validation"]["confusion_matrix"])) == metrics["validation_reviews"]
    assert len(metrics["history"]) >= 1 and {"train_loss", "valid_loss", "valid_acc"} <= set(metrics["history"][0])
    png = (tiny_training / "training.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_model_dir_is_a_complete_artifact_without_pickle(tiny_training, tiny_artifact):
    with tarfile.open(tiny_artifact) as tar:
        names = set(tar.getnames())
    assert {"model.pt", "vocab.json", "config.json", "code/inference.py",
            "code/model/__init__.py", "code/model/preprocess.py",
            "code/model/network.py", "code/model/encoding.py", "code/model/scorer.py"} <= names
    assert not any(n.endswith((".pkl", ".pickle", ".pyc")) for n in names)
    torch.load(tiny_training / "model" / "model.pt", weights_only=True)  # raises on anything but tensors


def _sagemaker_run(tmp_path, tiny_imdb_tarball, name):
    """Run model/train.py the way SageMaker's PyTorch script mode does."""
    channel = tmp_path / name / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (channel / "aclImdb_v1.tar.gz").symlink_to(tiny_imdb_tarball)
    env = dict(os.environ, SM_MODEL_DIR=str(tmp_path / name / "model"), SM_CHANNEL_TRAINING=str(channel),
               SM_OUTPUT_DATA_DIR=str(tmp_path / name / "output"))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "model" / "train.py"), *TINY_TRAINING_ARGS],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / name, result.stdout


def test_runs_as_sagemaker_script_mode_entry_point_and_is_reproducible(tmp_path, tiny_imdb_tarball):
    first, log = _sagemaker_run(tmp_path, tiny_imdb_tarball, "first")
    for name in ("model.pt", "vocab.json", "config.json", "code/inference.py", "code/model/network.py"):
        assert (first / "model" / name).is_file(), name
    assert not (first / "model" / "checkpoint.pt").exists()
    assert (first / "output" / "metrics.json").is_file() and (first / "output" / "training.png").is_file()
    assert "valid_acc=" in log  # the line SageMaker's metric definitions read
    second, _ = _sagemaker_run(tmp_path, tiny_imdb_tarball, "second")
    a = torch.load(first / "model" / "model.pt", weights_only=True)
    b = torch.load(second / "model" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _train(tmp_path, tiny_imdb_tarball, name, *extra):
    from model import train

    run = tmp_path / name
    metrics = train.main(["--data", str(tiny_imdb_tarball), "--model-dir", str(run / "model"),
                          "--output-dir", str(run), *TINY_TRAINING_ARGS, *extra])
    return run, metrics


def test_two_phase_training_ships_a_model_that_reads_the_lstm(tmp_path, tiny_imdb_tarball):
    run, metrics = _train(tmp_path, tiny_imdb_tarball, "two-phase", "--epochs", "3")
    assert [h["phase"] for h in metrics["history"]] == [1, 2, 2, 2]  # the bag fit, then LSTM epochs
    assert metrics["best_epoch"] >= 1  # a phase-two epoch, never the bag model alone
    weights = torch.load(run / "model" / "model.pt", weights_only=True)
    assert weights["head.weight"].abs().sum() > 0
    assert (weights["bag.weight"] != 0).sum() > 100  # words and n-grams carry weight


def test_bag_alone_is_the_fitted_regression(tmp_path, tiny_imdb_tarball):
    from model.encoding import Vocabulary
    from model.network import SentimentConfig, SentimentLSTM

    run, metrics = _train(tmp_path, tiny_imdb_tarball, "bag-only", "--no-lstm")
    assert [h["phase"] for h in metrics["history"]] == [1]
    assert metrics["validation"]["accuracy"] >= 0.9
    weights = torch.load(run / "model" / "model.pt", weights_only=True)
    assert set(weights) == {"bag.weight", "bag_bias"}
    vocabulary = Vocabulary.load(run / "model" / "vocab.json")
    network = SentimentLSTM(SentimentConfig.from_dict(metrics["config"]))
    network.load_state_dict({k: v.float() for k, v in weights.items()})
    bag = network.bag.weight.squeeze(1)
    assert bag[vocabulary.words["great"]] > 0 > bag[vocabulary.words["awful"]]  # praise up, scorn down


def test_phase_two_learns_from_out_of_fold_bag_logits():
    # On its own training reviews a bag is nearly always right; phase two must
    # see the bag as it is on reviews it was not fitted on.
    import numpy as np

    from model.train import bag_logits, fit_bag

    rng = np.random.default_rng(0)
    bags = [np.unique(rng.integers(0, 400, 30)) for _ in range(200)]
    labels = [int(rng.integers(0, 2)) for _ in bags]  # noise: nothing to learn
    weights, intercept = fit_bag(bags, labels, 400, c=10.0)
    fitted = np.mean((bag_logits(weights, intercept, bags) > 0) == np.array(labels))
    held_out_bags = [np.unique(rng.integers(0, 400, 30)) for _ in range(200)]
    held_out_labels = [int(rng.integers(0, 2)) for _ in held_out_bags]
    held_out = np.mean((bag_logits(weights, intercept, held_out_bags) > 0) == np.array(held_out_labels))
    assert fitted > 0.95 and held_out < 0.65  # why phase two needs out-of-fold logits


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_model(tmp_path, tiny_imdb_tarball, monkeypatch):
    from model import train

    straight, _ = _train(tmp_path, tiny_imdb_tarball, "straight", "--epochs", "3")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stopped after its last epoch, before the artifact
        patch.setattr(train, "write_model_dir", crash)
        try:
            _train(tmp_path, tiny_imdb_tarball, "resumed", "--epochs", "2")
        except KeyboardInterrupt:
            pass
    assert (tmp_path / "resumed" / "model" / "checkpoint.pt").is_file()
    resumed, metrics = _train(tmp_path, tiny_imdb_tarball, "resumed", "--epochs", "3", "--resume")
    assert [h["epoch"] for h in metrics["history"]] == [0, 1, 2, 3]
    a = torch.load(straight / "model" / "model.pt", weights_only=True)
    b = torch.load(resumed / "model" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_averaging_ships_the_mean_of_the_epochs_weights(tmp_path, tiny_imdb_tarball, monkeypatch):
    from model import train

    after_each_epoch = []
    save = train.save_checkpoint

    def record(path, network, *args):
        after_each_epoch.append({k: v.clone() for k, v in network.state_dict().items() if k.startswith("lstm.")})
        save(path, network, *args)

    monkeypatch.setattr(train, "save_checkpoint", record)
    run, metrics = _train(tmp_path, tiny_imdb_tarball, "averaged", "--epochs", "3", "--average-from", "2")
    assert metrics["averaged_epochs"] == 2 and [h["epoch"] for h in metrics["history"]][-3:] == [1, 2, 3]
    shipped = torch.load(run / "model" / "model.pt", weights_only=True)
    epoch_2, epoch_3 = after_each_epoch[-2:]  # the saves after epochs 2 and 3 (the first is before phase two)
    for name, weights in epoch_3.items():
        assert not torch.equal(weights, epoch_2[name])
        assert torch.allclose(shipped[name].float(), (epoch_2[name] + weights) / 2, atol=1e-3)


def test_the_blend_weighs_each_branch_by_what_it_knows():
    import numpy as np

    from model.train import blend

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    signal = np.where(labels == 1, 1.0, -1.0)
    bag = 2 * signal + rng.normal(0, 2, len(labels))  # informative
    noise = rng.normal(0, 2, len(labels))  # an LSTM that learned nothing
    probs, (bag_weight, lstm_weight) = blend(bag, noise, labels)
    assert bag_weight > 0.5 and abs(lstm_weight) < 0.1
    assert len(probs) == len(labels) and 0.8 < np.mean((probs > 0.5) == (labels == 1)) < 0.9
    second_view = 2 * signal + rng.normal(0, 2, len(labels))  # independent evidence: both count
    probs, (bag_weight, lstm_weight) = blend(bag, second_view, labels)
    assert bag_weight > 0.5 and lstm_weight > 0.5
    assert np.mean((probs > 0.5) == (labels == 1)) > 0.9


def test_stacked_training_ships_the_blend_inside_the_network(tmp_path, tiny_imdb_tarball):
    run, metrics = _train(tmp_path, tiny_imdb_tarball, "stacked", "--epochs", "2", "--combine", "stack")
    assert set(metrics["blend"]) == {"bag", "lstm"}
    assert metrics["validation"]["accuracy"] >= 0.9
    offset, metrics = _train(tmp_path, tiny_imdb_tarball, "offset", "--epochs", "2", "--combine", "offset")
    assert metrics["blend"] is None
    stacked_bag = torch.load(run / "model" / "model.pt", weights_only=True)["bag.weight"].float()
    offset_bag = torch.load(offset / "model" / "model.pt", weights_only=True)["bag.weight"].float()
    # the same phase-one fit, scaled by the blend's bag weight
    scale = (stacked_bag.abs().sum() / offset_bag.abs().sum()).item()
    assert abs(scale - json.loads((run / "metrics.json").read_text())["blend"]["bag"]) < 0.01


def test_the_config_is_the_command_line_and_the_shipped_model_used_its_defaults(repo_root, monkeypatch):
    from dataclasses import asdict

    from model import train

    for name in ("SM_CHANNEL_TRAINING", "SM_CHANNEL_TRAIN", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert train.parse_args([]) == train.TrainConfig()
    # SageMaker's way: `--name value` (a flag gets a "True" after it), unknown ones too, paths in SM_* variables
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training")
    config = train.parse_args(["--epochs", "3", "--no-lstm", "True", "--combine", "offset", "--sagemaker_x", "1",
                               "--negation-scope", "False"])
    assert (config.epochs, config.no_lstm, config.combine, config.negation_scope) == (3, True, "offset", False)
    assert train.parse_args(["--no-bag"]).no_bag and not train.parse_args(["--no-bag", "false"]).no_bag
    with pytest.raises(SystemExit):
        train.parse_args(["--no-bag", "maybe"])
    assert (config.model_dir, config.data) == ("/opt/ml/model", "/opt/ml/input/data/training")
    # --init-seed reseeds what training draws, not the split (which --seed keeps)
    assert (train.parse_args([]).training_seed, train.parse_args(["--init-seed", "2"]).training_seed) == (1337, 2)
    # the model card: every option of the command that made the shipped model is a default
    shipped = json.loads((repo_root / "model" / "artifact" / "training-metrics.json").read_text())["args"]
    defaults = asdict(train.TrainConfig())
    # Where things are and how fast they run are not the model: word2vec's cache gives the vectors a run
    # without it makes (the next test), and the thread count changes speed only.
    run_settings = ("data", "model_dir", "output_dir", "word2vec_cache", "threads")
    # Options added after the shipped model's run: their defaults must leave its training as it was.
    added_since = {}
    assert {**added_since, **{k: v for k, v in shipped.items() if k not in run_settings}} == {
        k: v for k, v in defaults.items() if k not in run_settings}


def test_word2vec_cache_gives_the_weights_of_a_run_without_it(tmp_path, tiny_imdb_tarball, capsys):
    cache = tmp_path / "word2vec.npz"
    plain, _ = _train(tmp_path, tiny_imdb_tarball, "plain", "--epochs", "1")
    first, _ = _train(tmp_path, tiny_imdb_tarball, "first", "--epochs", "1", "--word2vec-cache", str(cache))
    assert cache.is_file() and "vectors from" not in capsys.readouterr().err
    second, _ = _train(tmp_path, tiny_imdb_tarball, "second", "--epochs", "1", "--word2vec-cache", str(cache))
    assert f"vectors from {cache}" in capsys.readouterr().err
    weights = [torch.load(run / "model" / "model.pt", weights_only=True) for run in (plain, first, second)]
    assert all(w.keys() == weights[0].keys() and all(torch.equal(w[k], weights[0][k]) for k in w) for w in weights)


def test_short_examples_and_the_length_gate_train_and_serve(tmp_path, tiny_imdb_tarball):
    from model.scorer import Scorer

    run, metrics = _train(tmp_path, tiny_imdb_tarball, "short", "--epochs", "2", "--short-clauses", "200",
                          "--negation-flips", "100", "--contrast-joins", "100", "--teacher-margin", "0.1",
                          "--blend", "length")
    assert metrics["config"]["length_gate"] and len(metrics["blend"]["gate"]) == 4 and metrics["blend"]["examples"]
    assert metrics["validation"]["accuracy"] >= 0.9
    scorer = Scorer.load(run / "model")  # the gate is in the weights; the artifact loads as any other
    positive, negative = scorer.score([["a", "wonderful", "moving", "film"], ["an", "awful", "boring", "mess"]])
    assert positive > 0.5 > negative
