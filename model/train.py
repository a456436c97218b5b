"""Train the sentiment network on IMDB's train/ split.

Runs locally (`critic train --data PATH`) and, unchanged, as a SageMaker
PyTorch script-mode entry point: SageMaker passes hyperparameters as
arguments and the paths in SM_MODEL_DIR, SM_CHANNEL_TRAINING (or
SM_CHANNEL_TRAIN) and SM_OUTPUT_DATA_DIR. The model dir it writes is a
complete inference artifact (weights, vocabulary, config, code/).

Read top to bottom: data, vocabulary, network, loop, artifact, report.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # as a SageMaker entry point: model/ is the source dir
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from model.progress import progress

from model.data import load_imdb, movie_folds, validation_split
from model.encoding import Vocabulary
from model.network import SentimentConfig, SentimentLSTM
from model.package import write_model_dir
from model.preprocess import tokenize
from model.report import binary_metrics, plot_training
from model.scorer import collate, score_encoded

CHECKPOINT = "checkpoint.pt"


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description="Train Critic's sentiment LSTM on IMDB.")
    p.add_argument("--data", default=env.get("SM_CHANNEL_TRAINING") or env.get("SM_CHANNEL_TRAIN"),
                   help="aclImdb_v1.tar.gz, its unpacked folder, or a folder holding either "
                        "(default: download the official tarball)")
    p.add_argument("--model-dir", default=env.get("SM_MODEL_DIR", "runs/latest/model"))
    p.add_argument("--output-dir", default=env.get("SM_OUTPUT_DATA_DIR", "runs/latest"),
                   help="metrics.json and training.png go here")
    # network
    p.add_argument("--vocab-size", type=int, default=100_000, help="most words kept (each in >= 2 reviews)")
    p.add_argument("--buckets", type=int, default=16_000_057,
                   help="hashed bigram + trigram features in the bag branch (0: words only)")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--max-len", type=int, default=200, help="words the LSTM reads: the first and last halves")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--no-lstm", action="store_true", help="ablation: the bag branch alone")
    p.add_argument("--no-bag", action="store_true", help="ablation: the LSTM alone")
    # phase one: the bag branch, NB-weighted logistic regression fitted exactly
    p.add_argument("--bag-c", type=float, default=0.1, help="inverse L2 strength of the bag's regression")
    p.add_argument("--bag-folds", type=int, default=5,
                   help="folds (by movie) for the out-of-fold bag logits phase two learns from "
                        "(0: ablation, the full fit's own logits)")
    # phase two: the LSTM
    p.add_argument("--combine", choices=("stack", "offset"), default="stack",
                   help="stack: the LSTM learns alone, then two weights fitted on validation blend it with the bag; "
                        "offset: the LSTM learns on top of the bag's out-of-fold logits")
    p.add_argument("--word2vec-epochs", type=int, default=5,
                   help="initialise the LSTM's embeddings with word2vec trained this many epochs on the unlabelled "
                        "and training reviews (0: random embeddings)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=2, help="epochs without validation gain before stopping")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=0, help="use only this many training reviews (smoke runs)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--resume", action="store_true", help="continue from the model dir's checkpoint")
    # SageMaker passes unknown hyperparameters too; keep the ones we know.
    args, _ = p.parse_known_args(argv)
    return args


def find_dataset(path: str | None) -> str | None:
    """A SageMaker channel is a folder: find the tarball or aclImdb folder in it."""
    if not path or not Path(path).is_dir() or Path(path).name == "aclImdb":
        return path
    folder = Path(path)
    for candidate in [folder / "aclImdb", *sorted(folder.glob("*.tar.gz")), *sorted(folder.glob("*.tgz"))]:
        if candidate.exists():
            return str(candidate)
    return path


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


def out_of_fold_logits(bags, labels, folds: np.ndarray, size: int, c: float) -> np.ndarray:
    """Each review's bag logit from a fit that left its fold out."""
    logits = np.zeros(len(bags), dtype=np.float32)
    for fold in progress(sorted(set(folds.tolist())), desc="bag, out of fold", unit=" folds"):
        fit_on, held_out = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        weights, intercept = fit_bag([bags[i] for i in fit_on], [labels[i] for i in fit_on], size, c)
        logits[held_out] = bag_logits(weights, intercept, [bags[i] for i in held_out])
    return logits


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


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.time()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir, output_dir = Path(args.model_dir), Path(args.output_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)

    # data: train/ only; a seeded validation split, by movie, chooses the epoch
    imdb = load_imdb(find_dataset(args.data), splits=("train", "unsup") if args.word2vec_epochs else ("train",))
    examples = imdb.train
    if args.limit:
        examples = random.Random(args.seed).sample(examples, min(args.limit, len(examples)))
    train_set, valid_set = validation_split(examples, args.valid_fraction, args.seed)
    train_tokens = [tokenize(e.text) for e in progress(train_set, desc="preprocessing train", unit=" reviews")]
    valid_tokens = [tokenize(e.text) for e in progress(valid_set, desc="preprocessing validation", unit=" reviews")]
    train_labels = [e.label for e in train_set]
    valid_labels = [e.label for e in valid_set]

    # vocabulary, from the training part only
    vocabulary = Vocabulary.build(train_tokens, args.vocab_size, args.buckets)
    config = SentimentConfig(
        vocab_size=vocabulary.vocab_size,
        ngram_size=0 if args.no_bag else vocabulary.ngram_size,
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        dropout=args.dropout,
        max_len=args.max_len,
        use_lstm=not args.no_lstm,
    )
    train_encoded = [vocabulary.encode(t, config.max_len) for t in train_tokens]
    valid_encoded = [vocabulary.encode(t, config.max_len) for t in valid_tokens]
    stacked = args.combine == "stack" and config.use_lstm and bool(config.ngram_size)
    network = SentimentLSTM(config)
    checkpoint_path = model_dir / CHECKPOINT
    checkpoint = torch.load(checkpoint_path, weights_only=True) if args.resume and checkpoint_path.exists() else None
    if config.use_lstm and args.word2vec_epochs and not checkpoint:  # a checkpoint holds the embeddings
        # The unlabelled reviews teach the embeddings which words are alike
        # (IMDB gives 50,000 of them); validation text stays unseen.
        unsup_tokens = [tokenize(t) for t in progress(imdb.unsup, desc="preprocessing unlabelled", unit=" reviews")]
        started_w2v = time.time()
        vectors = word2vec_embeddings([*unsup_tokens, *train_tokens], vocabulary.words, config.embed_dim,
                                      args.word2vec_epochs, args.seed)
        with torch.no_grad():
            embedding = network.embedding.weight
            scale = embedding.std() / float(np.std(np.stack(list(vectors.values())))) if vectors else 1.0
            for i, vector in vectors.items():  # at the initial scale, so training starts as it would
                embedding[i] = torch.tensor(vector) * scale
        print(f"word2vec: {len(vectors)} of {len(vocabulary.words)} words in {time.time() - started_w2v:.0f} s",
              file=sys.stderr)
    if config.use_lstm and config.ngram_size:
        with torch.no_grad():  # the LSTM's head starts silent: until phase two the model is the bag
            network.head.weight.zero_()
            network.head.bias.zero_()

    # phase one: the bag branch. With --combine offset, phase two learns from
    # the bag's logits on reviews it was not fitted on (out of fold, by
    # movie), as at test time: on its own training reviews the bag is
    # over-confident. Stacked, the LSTM learns alone and needs none.
    history: list[dict] = []
    train_bag_logits = np.zeros(len(train_set), dtype=np.float32)
    if config.ngram_size and checkpoint:
        train_bag_logits = checkpoint["train_bag_logits"].numpy()
    elif config.ngram_size:
        phase_started = time.time()
        train_bags = [bag for _, bag in train_encoded]
        if config.use_lstm and not stacked and args.bag_folds:  # the stacked LSTM learns alone
            folds = np.array(movie_folds(train_set, args.bag_folds, args.seed))
            train_bag_logits = out_of_fold_logits(train_bags, train_labels, folds, config.ngram_size, args.bag_c)
        weights, intercept = fit_bag(train_bags, train_labels, config.ngram_size, args.bag_c)
        if not args.bag_folds and not stacked:
            train_bag_logits = bag_logits(weights, intercept, train_bags)
        with torch.no_grad():
            network.bag.weight.copy_(torch.from_numpy(weights).unsqueeze(1))
            network.bag_bias.fill_(intercept)
        valid_loss, valid_acc, _ = evaluate(network, valid_encoded, valid_labels)  # the bag alone
        history.append({"epoch": 0, "phase": 1, "train_loss": None, "train_acc": None,
                        "valid_loss": valid_loss, "valid_acc": valid_acc,
                        "seconds": round(time.time() - phase_started, 1)})
        print(f"epoch=0 valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}", flush=True)
    for p in [*network.bag.parameters(), network.bag_bias] if config.ngram_size else []:
        p.requires_grad_(False)  # phase two: the bag is fixed; only the LSTM learns

    best = {"valid_acc": -1.0, "valid_loss": float("inf"), "epoch": 0,
            "state": {k: v.clone() for k, v in network.state_dict().items()}}
    if config.use_lstm:
        optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad],
                                      lr=args.lr, weight_decay=args.weight_decay)
    first_epoch = 1
    if checkpoint:
        network.load_state_dict(checkpoint["network"])
        history, best = checkpoint["history"], checkpoint["best"]
        torch.set_rng_state(checkpoint["torch_rng"])  # dropout continues as if never stopped
        if config.use_lstm and "optimizer" in checkpoint:
            optimizer.load_state_dict(checkpoint["optimizer"])
        first_epoch = sum(h["phase"] == 2 for h in history) + 1
        print(f"resuming after epoch {first_epoch - 1}", file=sys.stderr)

    def save_checkpoint():
        torch.save({"network": network.state_dict(), "history": history, "best": best,
                    "torch_rng": torch.get_rng_state(), "train_bag_logits": torch.from_numpy(train_bag_logits),
                    **({"optimizer": optimizer.state_dict()} if config.use_lstm else {})},
                   checkpoint_path.with_suffix(".tmp"))
        checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)

    save_checkpoint()  # --resume then skips phase one's six fits
    rng = random.Random(args.seed)
    for _ in range(first_epoch - 1):  # replay the batch order of the epochs done
        list(batches(train_encoded, train_bag_logits, train_labels, args.batch_size, rng))

    # phase two: the LSTM, on top of the fixed bag
    steps_per_epoch = math.ceil(len(train_encoded) / args.batch_size)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(first_epoch, args.epochs + 1 if config.use_lstm else 1):
        network.train()
        epoch_started, seen, total_loss, correct = time.time(), 0, 0.0, 0
        bar = progress(batches(train_encoded, train_bag_logits, train_labels, args.batch_size, rng),
                       total=steps_per_epoch, desc=f"epoch {epoch}/{args.epochs}", unit=" batches")
        for tokens, lengths, bag, targets in bar:
            logits = network(tokens, lengths, bag_logits=bag if config.ngram_size else None)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            seen += len(targets)
            total_loss += loss.item() * len(targets)
            correct += int(((logits > 0).float() == targets).sum())
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)

        valid_loss, valid_acc, _ = evaluate(network, valid_encoded, valid_labels, stacked)
        history.append({"epoch": epoch, "phase": 2, "train_loss": total_loss / seen, "train_acc": correct / seen,
                        "valid_loss": valid_loss, "valid_acc": valid_acc,
                        "seconds": round(time.time() - epoch_started, 1)})
        # SageMaker's metric definitions read these lines from the log.
        print(f"epoch={epoch} train_loss={total_loss / seen:.4f} train_acc={correct / seen:.4f} "
              f"valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}", flush=True)
        # Chosen by validation accuracy, the figure reported; loss breaks ties.
        if (valid_acc, -valid_loss) > (best["valid_acc"], -best["valid_loss"]):
            best = {"valid_acc": valid_acc, "valid_loss": valid_loss, "epoch": epoch,
                    "state": {k: v.clone() for k, v in network.state_dict().items()}}
        save_checkpoint()
        if epoch - best["epoch"] >= args.patience:
            print(f"early stop: no validation gain since epoch {best['epoch']}", file=sys.stderr)
            break

    # artifact: the best epoch's weights, the vocabulary, the config and the code
    network.load_state_dict(best["state"])
    blend_weights = None
    if stacked:  # the blend's weights go into the branches: the network still adds two logits
        valid_blend_probs, blend_weights = blend(*branch_logits(network, valid_encoded), valid_labels)
        bag_weight, lstm_weight = blend_weights
        with torch.no_grad():
            network.bag.weight.mul_(bag_weight)
            network.bag_bias.mul_(bag_weight)
            network.head.weight.mul_(lstm_weight)
            network.head.bias.mul_(lstm_weight)
    write_model_dir(model_dir, network, vocabulary)
    checkpoint_path.unlink(missing_ok=True)

    # report on the validation split (test/ is reported once, by `critic evaluate`)
    # (stacked: the blend's cross-validated scores, since its weights were fitted on validation)
    valid_probs = valid_blend_probs.tolist() if stacked else evaluate(network, valid_encoded, valid_labels)[2]
    metrics = {
        "validation": binary_metrics(valid_labels, valid_probs),
        "best_epoch": best["epoch"],
        "blend": dict(zip(("bag", "lstm"), blend_weights)) if blend_weights else None,
        "history": history,
        "config": config.to_dict(),
        "args": {k: v for k, v in vars(args).items() if k not in ("data", "model_dir", "output_dir")},
        "train_reviews": len(train_set),
        "validation_reviews": len(valid_set),
        "parameters": sum(p.numel() for p in network.parameters()),
        "training_seconds": round(time.time() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_training(history, metrics["validation"]["confusion_matrix"], output_dir / "training.png")
    print(f"validation accuracy {metrics['validation']['accuracy']:.4f} (epoch {best['epoch']}); "
          f"model in {model_dir}; report in {output_dir}", file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
