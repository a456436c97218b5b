"""Train the sentiment network on IMDB's train/ split.

Runs locally (`critic train --data PATH`) and, unchanged, as a SageMaker
PyTorch script-mode entry point: SageMaker passes hyperparameters as
arguments and the paths in SM_MODEL_DIR, SM_CHANNEL_TRAINING (or
SM_CHANNEL_TRAIN) and SM_OUTPUT_DATA_DIR. The model dir it writes is a
complete inference artifact (weights, vocabulary, config, code/).

Read top to bottom: the config (every option, with its default), `main`
(the run, phase by phase), then each phase's functions in the order `main`
calls them: data, vocabulary and network, phase one (the bag), phase two
(the LSTM), artifact, report. Last, the ablations: what only the
experiment options (--combine offset, --bag-folds 0, --no-lstm, --no-bag)
need, kept out of the default path.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# SageMaker runs this file as a script (`python model/train.py`, from the
# source dir that holds model/ and contract/), so Python puts model/ on the
# path, not the source dir: without this line `import model` fails there.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from model.augment import FLIP_FORMS
from model.data import load_imdb, movie_folds, validation_split
from model.encoding import Vocabulary
from model.network import SentimentConfig, SentimentLSTM
from model.package import write_model_dir
from model.preprocess import tokenize
from model.progress import progress
from model.report import binary_metrics, plot_training
from model.scorer import collate, score_encoded

CHECKPOINT = "checkpoint.pt"


# --- config ------------------------------------------------------------------

def option(default, help: str | None = None, **argparse_settings):
    """A TrainConfig field: its default, and its command-line flag's help."""
    return field(default=default, metadata={"help": help, **argparse_settings})


@dataclass
class TrainConfig:
    """Every option, in the order `--help` lists them. Each is a flag
    (--vocab-size for vocab_size) and a SageMaker hyperparameter."""
    # where: the data, the model dir (the artifact) and the report
    data: str | None = option(None, "aclImdb_v1.tar.gz, its unpacked folder, or a folder holding either "
                                    "(default: download the official tarball)")
    model_dir: str = option("runs/latest/model")
    output_dir: str = option("runs/latest", "metrics.json and training.png go here")
    # network
    vocab_size: int = option(100_000, "most words kept (each in >= 2 reviews)")
    buckets: int = option(16_000_057, "hashed bigram + trigram features in the bag branch (0: words only)")
    negation_scope: bool = option(True, "the bag reads a word after a negation in the same clause as a feature of "
                                        "its own (\"not good\" stops counting as \"good\"; model/encoding.py); "
                                        "--negation-scope false: as before issue 15")
    embed_dim: int = option(32)
    hidden_dim: int = option(64)
    max_len: int = option(200, "words the LSTM reads: the first and last halves")
    dropout: float = option(0.3)
    no_lstm: bool = option(False, "ablation: the bag branch alone")
    no_bag: bool = option(False, "ablation: the LSTM alone")
    # phase one: the bag branch, NB-weighted logistic regression fitted exactly
    bag_c: float = option(0.1, "inverse L2 strength of the bag's regression")
    bag_folds: int = option(5, "folds (by movie) for the out-of-fold bag logits phase two learns from "
                               "(0: ablation, the full fit's own logits)")
    # phase two: the LSTM
    combine: str = option("stack", "stack: the LSTM learns alone, then two weights fitted on validation blend it "
                                   "with the bag; offset: the LSTM learns on top of the bag's out-of-fold logits",
                          choices=("stack", "offset"))
    word2vec_epochs: int = option(5, "initialise the LSTM's embeddings with word2vec trained this many epochs on "
                                     "the unlabelled and training reviews (0: random embeddings)")
    word2vec_cache: str = option("", "experiments: a file that keeps the word2vec vectors between runs; reused "
                                     "when made from the same reviews, vocabulary and word2vec settings")
    short_clauses: int = option(0, "experiment (issue 15): phase two also learns from this many clauses cut from the "
                                   "training reviews, labelled by their review where the bag agrees confidently "
                                   "(model/augment.py; tried with 60000)")
    negation_flips: int = option(30_000, "phase two also learns from this many confident clauses with their copula "
                                         "or verb negated or un-negated and the label flipped, each beside its "
                                         "original (model/augment.py; 0: none)")
    flip_forms: str = option("hedged", "plain: the flips put \"not\" before an adjective; hedged: also \"never\", "
                                      "\"hardly\" and \"far from\", and before \"a\"/\"an\" (\"was hardly a "
                                      "masterpiece\"); wide: also after \"it's\", \"that's\", \"they're\"",
                             choices=FLIP_FORMS)
    contrast_joins: int = option(3_000, "and from this many pairs of them joined by \"but\" (or \"and\" when "
                                        "alike), labelled by the second (0: none)")
    teacher_margin: float = option(0.5, "a clause is confident when the bag scores it on its review's side by this "
                                        "much (the flips and joins are made of confident clauses)")
    clause_labels: str = option("teacher", "teacher: only confident clauses are kept; review: any clause, labelled "
                                           "by its review", choices=("teacher", "review"))
    adversarial: float = option(0.0, "experiment (issue 15): adversarial training on the embeddings (Miyato et al., "
                                     "2017): each batch also learns from its words moved by this L2 norm, per text, "
                                     "in the direction that raises its loss most (0: off; tried with 2 and 5)")
    blend: str = option("fixed", "fixed: two weights, fitted on validation's reviews; length (experiment): they "
                                 "vary with the review's length, fitted on validation's reviews and the short "
                                 "examples made from them",
                        choices=("length", "fixed"))
    epochs: int = option(4)
    batch_size: int = option(64)
    lr: float = option(3e-3)
    weight_decay: float = option(1e-4)
    patience: int = option(2, "without --average-from: epochs without validation gain before stopping")
    average_from: int = option(2, "the LSTM shipped is the mean of its weights at the end of this epoch and every "
                                  "later one (stochastic weight averaging, Izmailov et al., 2018), all --epochs "
                                  "run (issue 15); 0: the epoch with the best validation accuracy, early stopping")
    valid_fraction: float = option(0.1)
    limit: int = option(0, "use only this many training reviews (smoke runs)")
    seed: int = option(1337)
    init_seed: int = option(-1, "experiments: the seed of the initial weights and the batch order only (-1: "
                                "--seed); the split, word2vec and the examples keep --seed, so runs differ only "
                                "in what training draws (how much a figure moves between runs)")
    threads: int = option(0, "torch threads (0: all cores)")
    resume: bool = option(False, "continue from the model dir's checkpoint")

    @property
    def training_seed(self) -> int:
        return self.seed if self.init_seed < 0 else self.init_seed


def truth(text: str) -> bool:
    """A flag's value as SageMaker hands it back (`--no-lstm True`) or a
    person types it (`--negation-scope false`)."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return value


def parse_args(argv=None) -> TrainConfig:
    """The config from the command line. In SageMaker the paths' defaults
    come from its SM_* variables."""
    env = os.environ
    defaults = TrainConfig(data=env.get("SM_CHANNEL_TRAINING") or env.get("SM_CHANNEL_TRAIN"),
                           model_dir=env.get("SM_MODEL_DIR", TrainConfig.model_dir),
                           output_dir=env.get("SM_OUTPUT_DATA_DIR", TrainConfig.output_dir))
    parser = argparse.ArgumentParser(description="Train Critic's sentiment LSTM on IMDB.")
    for option_field in fields(TrainConfig):
        default = getattr(defaults, option_field.name)
        settings = dict(option_field.metadata)
        if isinstance(default, bool):  # `--flag`, `--flag true`, `--flag false`
            settings.update(nargs="?", const=True, type=truth, metavar="true|false")
        elif isinstance(default, (int, float)):
            settings["type"] = type(default)
        parser.add_argument(f"--{option_field.name.replace('_', '-')}", default=default, **settings)
    # SageMaker passes unknown hyperparameters too (`--sagemaker_program ...`):
    # keep the ones we know.
    known, _ = parser.parse_known_args(argv)
    return TrainConfig(**vars(known))


# --- the run -----------------------------------------------------------------

def main(argv=None) -> dict:
    config = parse_args(argv)
    started = time.time()
    random.seed(config.seed)
    torch.manual_seed(config.training_seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    model_dir, output_dir = Path(config.model_dir), Path(config.output_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = model_dir / CHECKPOINT

    # data: train/ only; a seeded validation split, by movie, chooses the epoch
    train, valid, unlabelled = load_reviews(config)

    # vocabulary, from the training part only, and the network. The network
    # draws its initial weights first of anything from torch's seeded RNG.
    vocabulary = Vocabulary.build(train.tokens, config.vocab_size, config.buckets,
                                  negation_scope=config.negation_scope)
    network = build_network(config, vocabulary)
    train.encode(vocabulary, config.max_len)
    valid.encode(vocabulary, config.max_len)
    checkpoint = torch.load(checkpoint_path, weights_only=True) if config.resume and checkpoint_path.exists() else None
    uses_bag, uses_lstm = bool(network.config.ngram_size), network.config.use_lstm
    if uses_lstm and config.word2vec_epochs and not checkpoint:  # a checkpoint holds the embeddings
        initialise_embeddings(network, vocabulary, unlabelled, train, config)
    # Stacked (the default), the LSTM learns alone and a blend adds the bag afterwards.
    stacked = config.combine == "stack" and uses_lstm and uses_bag

    # phase one: the bag branch, fitted exactly; a checkpoint has it already
    history: list[dict] = []
    # what phase two adds to the LSTM's logits on each training review: stacked, nothing
    train_bag_logits = np.zeros(len(train.reviews), dtype=np.float32)
    if uses_bag and checkpoint:
        train_bag_logits = checkpoint["train_bag_logits"].numpy()
    elif uses_bag:
        history.append(fit_bag_branch(network, train, valid, config))
        if not stacked:
            train_bag_logits = ablation_bag_logits(network, train, config)
    if uses_bag:
        for p in [*network.bag.parameters(), network.bag_bias, *([network.gate] if network.config.length_gate else [])]:
            p.requires_grad_(False)  # phase two: the bag (and the blend) is fixed; only the LSTM learns

    # phase two: the LSTM, on top of the fixed bag, from the start or from the checkpoint
    best = {"valid_acc": -1.0, "valid_loss": float("inf"), "epoch": 0, "state": clone_state(network)}
    optimizer = (torch.optim.AdamW([p for p in network.parameters() if p.requires_grad],
                                   lr=config.lr, weight_decay=config.weight_decay) if uses_lstm else None)
    epochs_done = 0
    if checkpoint:
        history, best, epochs_done = resume(checkpoint, network, optimizer)
    save_checkpoint(checkpoint_path, network, optimizer, history, best, train_bag_logits)  # --resume skips phase one
    # what the LSTM learns from: the training reviews and, stacked, short examples cut from them
    lstm_train, train_bag_logits = with_short_examples(train, train_bag_logits, network, vocabulary, config, stacked)
    if uses_lstm:
        best = train_lstm(network, optimizer, lstm_train, valid, train_bag_logits, config, stacked=stacked,
                          history=history, best=best, epochs_done=epochs_done, checkpoint_path=checkpoint_path)

    # artifact: the averaged (or the best epoch's) weights, the vocabulary, the config and the code
    # (stacked, its validation scores are the blend's cross-validated ones: its weights were fitted there)
    network.load_state_dict(best["state"])
    blend_weights = None
    if stacked:
        valid_probs, blend_weights = blend_into_network(network, valid, vocabulary, config, len(train.reviews))
    else:
        valid_probs = evaluate(network, valid.encoded, valid.labels)[2]
    write_model_dir(model_dir, network, vocabulary)
    checkpoint_path.unlink(missing_ok=True)

    # report on the validation split (test/ is reported once, by `critic evaluate`)
    metrics = {
        "validation": binary_metrics(valid.labels, valid_probs),
        "best_epoch": best["epoch"],
        "averaged_epochs": best.get("averaged", 0),
        "blend": blend_weights,
        "history": history,
        "config": network.config.to_dict(),
        "args": {k: v for k, v in asdict(config).items() if k not in ("data", "model_dir", "output_dir")},
        "train_reviews": len(train.reviews),
        "validation_reviews": len(valid.reviews),
        "parameters": sum(p.numel() for p in network.parameters()),
        "training_seconds": round(time.time() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    write_report(metrics, output_dir)
    print(f"validation accuracy {metrics['validation']['accuracy']:.4f} (epoch {best['epoch']}); "
          f"model in {model_dir}; report in {output_dir}", file=sys.stderr)
    return metrics


# --- data --------------------------------------------------------------------

@dataclass
class Reviews:
    """A labelled part of train/, in each form the phases read."""
    reviews: list  # model.data.Review
    tokens: list[list[str]]
    labels: list[int]
    encoded: list = field(default_factory=list)  # (word ids, n-gram ids) of each review, once encoded

    @classmethod
    def of(cls, reviews, desc: str) -> "Reviews":
        tokens = [tokenize(r.text) for r in progress(reviews, desc=f"preprocessing {desc}", unit=" reviews")]
        return cls(reviews, tokens, [r.label for r in reviews])

    def encode(self, vocabulary: Vocabulary, max_len: int) -> None:
        self.encoded = [vocabulary.encode(t, max_len) for t in self.tokens]


def find_dataset(path: str | None) -> str | None:
    """A SageMaker channel is a folder: find the tarball or aclImdb folder in it."""
    if not path or not Path(path).is_dir() or Path(path).name == "aclImdb":
        return path
    folder = Path(path)
    for candidate in [folder / "aclImdb", *sorted(folder.glob("*.tar.gz")), *sorted(folder.glob("*.tgz"))]:
        if candidate.exists():
            return str(candidate)
    return path


def load_reviews(config: TrainConfig) -> tuple[Reviews, Reviews, list[str]]:
    """(training part, validation part, the unlabelled reviews' texts): a
    seeded split of train/ by movie, and unsup/ when word2vec reads it."""
    imdb = load_imdb(find_dataset(config.data), splits=("train", "unsup") if config.word2vec_epochs else ("train",))
    examples = imdb.train
    if config.limit:
        examples = random.Random(config.seed).sample(examples, min(config.limit, len(examples)))
    train_set, valid_set = validation_split(examples, config.valid_fraction, config.seed)
    return Reviews.of(train_set, "train"), Reviews.of(valid_set, "validation"), imdb.unsup


# --- vocabulary and network --------------------------------------------------

def build_network(config: TrainConfig, vocabulary: Vocabulary) -> SentimentLSTM:
    network = SentimentLSTM(SentimentConfig(
        vocab_size=vocabulary.vocab_size,
        ngram_size=0 if config.no_bag else vocabulary.ngram_size,
        embed_dim=config.embed_dim,
        hidden_dim=config.hidden_dim,
        dropout=config.dropout,
        max_len=config.max_len,
        use_lstm=not config.no_lstm,
        length_gate=config.blend == "length" and config.combine == "stack" and not (config.no_lstm or config.no_bag),
    ))
    if network.config.use_lstm and network.config.ngram_size:
        with torch.no_grad():  # the LSTM's head starts silent: until phase two the model is the bag
            network.head.weight.zero_()
            network.head.bias.zero_()
    return network


def initialise_embeddings(network, vocabulary: Vocabulary, unlabelled: list[str], train: Reviews,
                          config: TrainConfig) -> None:
    """The unlabelled reviews (IMDB gives 50,000) and the training part teach
    the embeddings which words are alike; validation text stays unseen."""
    started = time.time()
    vectors = cached_word2vec(config, vocabulary, train, network.config.embed_dim)
    if vectors is None:
        unlabelled_tokens = [tokenize(t) for t in progress(unlabelled, desc="preprocessing unlabelled",
                                                           unit=" reviews")]
        vectors = word2vec_embeddings([*unlabelled_tokens, *train.tokens], vocabulary.words,
                                      network.config.embed_dim, config.word2vec_epochs, config.seed)
        cached_word2vec(config, vocabulary, train, network.config.embed_dim, vectors)
    with torch.no_grad():
        embedding = network.embedding.weight
        scale = embedding.std() / float(np.std(np.stack(list(vectors.values())))) if vectors else 1.0
        for i, vector in vectors.items():  # at the initial scale, so training starts as it would
            embedding[i] = torch.tensor(vector) * scale
    print(f"word2vec: {len(vectors)} of {len(vocabulary.words)} words in {time.time() - started:.0f} s",
          file=sys.stderr)


def cached_word2vec(config: TrainConfig, vocabulary: Vocabulary, train: Reviews, dim: int,
                    vectors: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray] | None:
    """--word2vec-cache: the vectors a run with the same inputs made (None if
    there are none), or, given vectors, keep them for the next run. Keyed by
    everything word2vec reads, so a stale file is never used."""
    if not config.word2vec_cache:
        return vectors
    import hashlib

    key = hashlib.sha256(json.dumps([sorted(vocabulary.words.items()), [r.movie for r in train.reviews],
                                     len(train.tokens), dim, config.word2vec_epochs, config.seed]).encode()
                         ).hexdigest()
    path = Path(config.word2vec_cache)
    if vectors is not None:
        ids = np.array(list(vectors), dtype=np.int64)  # in their order: the scale is summed in it
        np.savez(path, key=key, ids=ids, vectors=np.stack([vectors[i] for i in ids.tolist()]))
        return vectors
    if not path.exists():
        return None
    kept = np.load(path)
    if str(kept["key"]) != key:
        return None
    print(f"word2vec: vectors from {path}", file=sys.stderr)
    return dict(zip(kept["ids"].tolist(), kept["vectors"]))


def word2vec_embeddings(documents, words: dict[str, int], dim: int, epochs: int, seed: int) -> dict[int, np.ndarray]:
    """Skip-gram word vectors (gensim) from unlabelled text: {word id: vector}.
    One worker thread and a fixed string hash, so a run is reproducible."""
    import zlib

    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class Progress(CallbackAny2Vec):
        def __init__(self):
            self.bar = progress(total=epochs, desc="word2vec", unit=" epochs")

        def on_epoch_end(self, model):
            self.bar.update(1)

    bar = Progress()
    vectors = Word2Vec(documents, vector_size=dim, window=5, min_count=2, sg=1, epochs=epochs, seed=seed,
                       workers=1, hashfxn=lambda text: zlib.crc32(text.encode("utf-8")), callbacks=[bar]).wv
    bar.bar.close()
    return {i: vectors[w] for w, i in words.items() if w in vectors}


# --- phase one: the bag branch -----------------------------------------------

def fit_bag_branch(network, train: Reviews, valid: Reviews, config: TrainConfig) -> dict:
    """The bag's regression, fitted on the training part, into the network;
    returns its history entry (the bag alone on validation)."""
    started = time.time()
    weights, intercept = fit_bag([bag for _, bag in train.encoded], train.labels, network.config.ngram_size,
                                 config.bag_c)
    with torch.no_grad():
        network.bag.weight.copy_(torch.from_numpy(weights).unsqueeze(1))
        network.bag_bias.fill_(intercept)
    valid_loss, valid_acc, _ = evaluate(network, valid.encoded, valid.labels)
    print(f"epoch=0 valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}", flush=True)
    return {"epoch": 0, "phase": 1, "train_loss": None, "train_acc": None,
            "valid_loss": valid_loss, "valid_acc": valid_acc, "seconds": round(time.time() - started, 1)}


def fit_bag(bags, labels, size: int, c: float):
    """NB-weighted logistic regression on the sets of n-grams (Wang & Manning
    2012): features scaled by their log-count ratio, an L2 fit by liblinear.
    A convex problem, so solved exactly rather than by SGD. Returns (one
    weight per feature id, intercept); features in fewer than two reviews
    keep weight 0 (they carry noise, not evidence)."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    indptr = np.cumsum([0] + [len(b) for b in bags])
    x = csr_matrix((np.ones(indptr[-1], dtype=np.float32), np.concatenate(bags), indptr), shape=(len(bags), size))
    y = np.asarray(labels)
    df = np.asarray(x.sum(0)).ravel()
    keep = np.flatnonzero(df >= 2)
    x = x[:, keep]
    pos, neg = np.asarray(x[y == 1].sum(0)).ravel() + 1, np.asarray(x[y == 0].sum(0)).ravel() + 1
    ratio = np.log((pos / pos.sum()) / (neg / neg.sum()))
    fit = LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000, random_state=0)  # reproducible
    fit = fit.fit(x.multiply(ratio).tocsr(), y)
    weights = np.zeros(size, dtype=np.float32)
    weights[keep] = ratio * fit.coef_[0]
    return weights, float(fit.intercept_[0])


def bag_logits(weights, intercept, bags):
    return np.array([weights[b].sum() for b in bags], dtype=np.float32) + intercept


# --- phase two: the LSTM -----------------------------------------------------

def short_examples_of(reviews: Reviews, network, vocabulary: Vocabulary, config: TrainConfig, seed: int,
                      share: float = 1.0) -> list:
    """Clauses, negation flips and contrast joins made from these reviews
    (model/augment.py), the bag branch as the teacher; share scales the
    options' counts (validation is a tenth of train/)."""
    from model.augment import Teacher, short_examples

    teacher = Teacher(vocabulary, network.bag.weight.detach().squeeze(1).numpy())
    return short_examples(reviews.tokens, reviews.labels, teacher, clauses_kept=round(config.short_clauses * share),
                          flips=round(config.negation_flips * share), joins=round(config.contrast_joins * share),
                          margin=config.teacher_margin, word_margin=config.teacher_margin, seed=seed,
                          filtered=config.clause_labels == "teacher", forms=config.flip_forms)


def with_short_examples(train: Reviews, train_bag_logits: np.ndarray, network, vocabulary: Vocabulary,
                        config: TrainConfig, stacked: bool) -> tuple[Reviews, np.ndarray]:
    """The training part, plus (stacked, with the options' counts) the short
    examples: their bag logits are zeros, as the reviews' are when stacked."""
    if not stacked or not (config.short_clauses or config.negation_flips or config.contrast_joins):
        return train, train_bag_logits
    started = time.time()
    examples = short_examples_of(train, network, vocabulary, config, config.seed)
    print(f"short examples: {len(examples)} in {time.time() - started:.0f} s", file=sys.stderr)
    both = Reviews([*train.reviews, *([None] * len(examples))], [*train.tokens, *(e.tokens for e in examples)],
                   [*train.labels, *(e.label for e in examples)])
    both.encoded = [*train.encoded, *(vocabulary.encode(e.tokens, config.max_len) for e in examples)]
    return both, np.concatenate([train_bag_logits, np.zeros(len(examples), dtype=np.float32)])


def train_lstm(network, optimizer, train: Reviews, valid: Reviews, train_bag_logits: np.ndarray,
               config: TrainConfig, *, stacked: bool, history: list[dict], best: dict, epochs_done: int,
               checkpoint_path: Path) -> dict:
    """Epochs of the LSTM, a checkpoint after each; appends to history. With
    config.average_from, all config.epochs run and it returns the running mean
    of the weights from that epoch on (its figures and weights); without,
    it stops after config.patience epochs without validation gain and
    returns the best epoch."""
    rng = random.Random(config.training_seed)
    for _ in range(epochs_done):  # replay the batch order of the epochs done
        list(batches(train.encoded, train_bag_logits, train.labels, config.batch_size, rng))
    steps_per_epoch = math.ceil(len(train.encoded) / config.batch_size)
    for epoch in range(epochs_done + 1, config.epochs + 1):
        started = time.time()
        bar = progress(batches(train.encoded, train_bag_logits, train.labels, config.batch_size, rng),
                       total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", unit=" batches")
        train_loss, train_acc = train_epoch(network, optimizer, bar, config.adversarial)
        valid_loss, valid_acc, _ = evaluate(network, valid.encoded, valid.labels, stacked)
        history.append({"epoch": epoch, "phase": 2, "train_loss": train_loss, "train_acc": train_acc,
                        "valid_loss": valid_loss, "valid_acc": valid_acc, "seconds": round(time.time() - started, 1)})
        # SageMaker's metric definitions read these lines from the log.
        print(f"epoch={epoch} train_loss={train_loss:.4f} train_acc={train_acc:.4f} "
              f"valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}", flush=True)
        if config.average_from and epoch >= config.average_from:
            best = averaged(network, best, epoch, valid, stacked)
        # Chosen by validation accuracy, the figure reported; loss breaks ties.
        elif not config.average_from and (valid_acc, -valid_loss) > (best["valid_acc"], -best["valid_loss"]):
            best = {"valid_acc": valid_acc, "valid_loss": valid_loss, "epoch": epoch, "state": clone_state(network)}
        save_checkpoint(checkpoint_path, network, optimizer, history, best, train_bag_logits)
        if not config.average_from and epoch - best["epoch"] >= config.patience:
            print(f"early stop: no validation gain since epoch {best['epoch']}", file=sys.stderr)
            break
    return best


def averaged(network, best: dict, epoch: int, valid: "Reviews", stacked: bool) -> dict:
    """Weight averaging: `best` with this epoch's weights folded into its
    running mean, and that mean's validation figures. Between epochs of one
    run the weights stay in one basin, so their mean is a network of its own
    (flatter, and not one epoch picked by a validation figure that moves by
    noise)."""
    now, count = clone_state(network), best.get("averaged", 0)
    mean = now if not count else {k: v + (now[k] - v) / (count + 1) for k, v in best["state"].items()}
    network.load_state_dict(mean)
    valid_loss, valid_acc, _ = evaluate(network, valid.encoded, valid.labels, stacked)
    network.load_state_dict(now)  # training goes on from its own weights
    print(f"weights averaged over {count + 1} epochs: valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}",
          file=sys.stderr)
    return {"valid_acc": valid_acc, "valid_loss": valid_loss, "epoch": epoch, "averaged": count + 1, "state": mean}


def train_epoch(network, optimizer, batches_with_progress, adversarial: float = 0.0) -> tuple[float, float]:
    """One pass over the training part: (mean loss, accuracy). With
    `adversarial`, each batch's loss also counts the batch with every text's
    embedded words moved by that L2 norm along the loss's gradient (the
    worst small change, to first order): the LSTM learns verdicts that do
    not hinge on one word's exact vector."""
    network.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    seen, total_loss, correct = 0, 0.0, 0
    uses_bag = bool(network.config.ngram_size)
    for tokens, lengths, bag, targets in batches_with_progress:
        bag_logits = bag if uses_bag else None
        noise = torch.zeros(*tokens.shape, network.config.embed_dim, requires_grad=True) if adversarial else None
        logits = network(tokens, lengths, bag_logits=bag_logits, embedding_noise=noise)
        loss = loss_fn(logits, targets)
        total = loss
        if adversarial:
            (gradient,) = torch.autograd.grad(loss, noise, retain_graph=True)
            norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
            worst = adversarial * gradient / norms  # padding gets none: its gradient is zero
            total = loss + loss_fn(network(tokens, lengths, bag_logits=bag_logits, embedding_noise=worst), targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        seen += len(targets)
        total_loss += loss.item() * len(targets)
        correct += int(((logits > 0).float() == targets).sum())
        batches_with_progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                                          refresh=False)
    return total_loss / seen, correct / seen


def batches(encoded, fixed_logits, labels, batch_size, rng):
    """Batches of similar length (less padding), in random order, each with
    its reviews' fixed bag logits."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]) + rng.random() * 8))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    for chunk in chunks:
        tokens, lengths, _, _ = collate([encoded[i] for i in chunk])
        yield (tokens, lengths, torch.from_numpy(fixed_logits[chunk]),
               torch.tensor([labels[i] for i in chunk], dtype=torch.float))


def evaluate(network, encoded, labels, stacked: bool = False):
    """(loss, accuracy, probabilities); stacked: of the blend, cross-validated."""
    if stacked:
        probs = blend(*branch_logits(network, encoded), labels)[0]
    else:
        probs = np.array(score_encoded(network, encoded, batch_size=512))
    eps = 1e-7
    loss = float(-np.mean(np.where(np.asarray(labels) == 1, np.log(probs + eps), np.log(1 - probs + eps))))
    accuracy = float(np.mean((probs > 0.5) == (np.asarray(labels) == 1)))
    return loss, accuracy, probs.tolist()


def clone_state(network) -> dict:
    return {k: v.clone() for k, v in network.state_dict().items()}


def save_checkpoint(path: Path, network, optimizer, history, best, train_bag_logits) -> None:
    """Everything an interrupted run needs to go on as if never stopped,
    written whole or not at all."""
    torch.save({"network": network.state_dict(), "history": history, "best": best,
                "torch_rng": torch.get_rng_state(), "train_bag_logits": torch.from_numpy(train_bag_logits),
                **({"optimizer": optimizer.state_dict()} if optimizer else {})},
               path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def resume(checkpoint: dict, network, optimizer) -> tuple[list[dict], dict, int]:
    """The checkpoint's network, optimizer and RNG state; returns (history,
    best, phase-two epochs done)."""
    network.load_state_dict(checkpoint["network"])
    torch.set_rng_state(checkpoint["torch_rng"])  # dropout continues as if never stopped
    if optimizer and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    history = checkpoint["history"]
    epochs_done = sum(h["phase"] == 2 for h in history)
    print(f"resuming after epoch {epochs_done}", file=sys.stderr)
    return history, checkpoint["best"], epochs_done


# --- artifact ----------------------------------------------------------------

def blend_into_network(network, valid: Reviews, vocabulary: Vocabulary, config: TrainConfig,
                       train_reviews: int) -> tuple[list[float], dict]:
    """Stacking: the blend of the two branches, fitted on validation. Fixed,
    its two weights go into the branches' weights (the network still adds two
    logits); with the length gate, its four weights into the gate. Returns the
    blend's cross-validated probabilities on the validation reviews (its
    weights were fitted there) and its weights."""
    if not network.config.length_gate:
        probs, (bag_weight, lstm_weight) = blend(*branch_logits(network, valid.encoded), valid.labels)
        with torch.no_grad():
            network.bag.weight.mul_(bag_weight)
            network.bag_bias.mul_(bag_weight)
            network.head.weight.mul_(lstm_weight)
            network.head.bias.mul_(lstm_weight)
        return probs.tolist(), {"bag": bag_weight, "lstm": lstm_weight}
    # The length-aware blend learns from validation's reviews and from short
    # examples cut from them (the bag never saw these reviews: an honest teacher).
    examples = short_examples_of(valid, network, vocabulary, config, config.seed + 1,
                                 share=len(valid.reviews) / train_reviews)
    encoded = [*valid.encoded, *(vocabulary.encode(e.tokens, config.max_len) for e in examples)]
    labels = [*valid.labels, *(e.label for e in examples)]
    lengths = np.array([len(ids) for ids, _ in encoded], dtype=np.float64)
    probs, gate = length_blend(*branch_logits(network, encoded), np.log(lengths), labels)
    with torch.no_grad():
        network.gate.copy_(torch.tensor(gate))
    return probs[: len(valid.labels)].tolist(), {"gate": list(gate), "examples": len(examples)}


def length_blend(bag: np.ndarray, lstm: np.ndarray, log_length: np.ndarray, labels):
    """The length-aware blend: a logistic regression over bag, bag x
    log(length), LSTM and LSTM x log(length), no intercept. Returns its
    10-fold cross-validated P(positive) and its weights fitted on all (the
    gate: bag weight = g0 + g1 log(length), LSTM weight = g2 + g3 log(length))."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, y = np.stack([bag, bag * log_length, lstm, lstm * log_length], 1), np.asarray(labels)
    model = LogisticRegression(C=10, fit_intercept=False, max_iter=1000)
    probs = cross_val_predict(model, x, y, cv=min(10, int(np.bincount(y).min())), method="predict_proba")[:, 1]
    return probs, [float(w) for w in model.fit(x, y).coef_[0]]


def blend(bag: np.ndarray, lstm: np.ndarray, labels) -> tuple[np.ndarray, tuple[float, float]]:
    """Stacking: a two-weight logistic regression over the bag's and the
    LSTM's logits. Returns its 10-fold cross-validated P(positive) (what the
    blend scores on reviews it was not fitted on) and the weights fitted on
    all of them (bag weight, LSTM weight).

    No intercept of its own: each branch has its bias already, and one
    fitted on full-length reviews (logits of several units) shifts every
    review alike, which outweighs the few features of a one-sentence review
    (on validation's single sentences it cost 4 points, see the model card)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, y = np.stack([bag, lstm], 1), np.asarray(labels)
    model = LogisticRegression(C=10, fit_intercept=False)
    probs = cross_val_predict(model, x, y, cv=min(10, int(np.bincount(y).min())), method="predict_proba")[:, 1]
    fit = model.fit(x, y)
    return probs, (float(fit.coef_[0][0]), float(fit.coef_[0][1]))


@torch.inference_mode()
def branch_logits(network, encoded) -> tuple[np.ndarray, np.ndarray]:
    """(bag logits, LSTM logits) of each review, in order."""
    network.eval()
    bag, lstm = [], []
    for start in range(0, len(encoded), 512):
        tokens, lengths, ngrams, offsets = collate(encoded[start : start + 512])
        b = network.bag_logits(ngrams, offsets)
        bag.append(b)
        lstm.append(network(tokens, lengths, bag_logits=torch.zeros_like(b)))
    return torch.cat(bag).numpy(), torch.cat(lstm).numpy()


# --- report ------------------------------------------------------------------

def write_report(metrics: dict, output_dir: Path) -> None:
    """metrics.json, and training.png: the curves and the confusion matrix."""
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_training(metrics["history"], metrics["validation"]["confusion_matrix"], output_dir / "training.png")


# --- ablations ---------------------------------------------------------------
# The default stacks: the LSTM learns alone (its bag logits are zeros) and
# the blend adds the bag afterwards. The experiments below give phase two the
# bag's logits to learn on top of instead.

def ablation_bag_logits(network, train: Reviews, config: TrainConfig) -> np.ndarray:
    """The bag logits phase two adds to the LSTM's on each training review
    when not stacked. --combine offset: the bag's logits on reviews it was
    not fitted on (out of fold, by movie), as at test time: on its own
    training reviews the bag is over-confident. --bag-folds 0: the full
    fit's own logits anyway. --no-lstm: no phase two, zeros."""
    bags = [bag for _, bag in train.encoded]
    if not config.bag_folds:
        weights = network.bag.weight.detach().squeeze(1).numpy()
        return bag_logits(weights, network.bag_bias.item(), bags)
    if not network.config.use_lstm:
        return np.zeros(len(bags), dtype=np.float32)
    folds = np.array(movie_folds(train.reviews, config.bag_folds, config.seed))
    return out_of_fold_logits(bags, train.labels, folds, network.config.ngram_size, config.bag_c)


def out_of_fold_logits(bags, labels, folds: np.ndarray, size: int, c: float) -> np.ndarray:
    """Each review's bag logit from a fit that left its fold out."""
    logits = np.zeros(len(bags), dtype=np.float32)
    for fold in progress(sorted(set(folds.tolist())), desc="bag, out of fold", unit=" folds"):
        fit_on, held_out = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        weights, intercept = fit_bag([bags[i] for i in fit_on], [labels[i] for i in fit_on], size, c)
        logits[held_out] = bag_logits(weights, intercept, [bags[i] for i in held_out])
    return logits


if __name__ == "__main__":
    main()
