"""What IMDB's 50,000 unlabelled reviews are worth to the LSTM branch.

The experiments that chose the shipped design (model card, "The unlabelled
reviews"). Phase one (the bag, five out-of-fold fits and the full fit) runs
once, as `critic train` runs it; then each variant trains phase two with
model/train.py's loop (AdamW, lr 3e-3, batches of 64, 6 epochs, the epoch
with the best validation accuracy kept) and reports that epoch's validation
accuracy and loss, for each seed. Unless said otherwise the LSTM has 32 units,
reads 50 words and learns on top of the bag's out-of-fold logits (the model
shipped before this experiment). The unlabelled reviews are used with the
training part of train/ (never validation, never test/):

  previous         that model: embeddings from scratch
  word2vec         embeddings initialised from skip-gram word2vec (gensim: 32
                   dimensions, window 5, 5 epochs) trained on the unlabelled
                   and training reviews, then fine-tuned
  word2vec-frozen  the same embeddings kept fixed, LSTM over 200 words
  lm               embeddings and LSTM pretrained as a next-word language
                   model (Dai & Le 2015's LM-LSTM; output over the 8,000
                   commonest words) on the first and last 50 words of every
                   unlabelled and training review, one epoch (first seed only)
  stack            a separate LSTM classifier (word2vec embeddings, 64 units,
                   400 words, no bag offset), stacked with the bag by a
                   two-weight logistic regression (model.train.blend);
                   accuracy by 10-fold cross-validation on the validation
                   split, and the LSTM's own accuracy beside it. What
                   `critic train` now does by default, except that word2vec
                   here runs on two threads (faster, not bit-reproducible)

Needs gensim (.venv/bin/pip install gensim); the product does not.

    .venv/bin/python scripts/ablate_unlabeled.py --data ../shared/data/aclImdb_v1.tar.gz
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.data import load_imdb, movie_folds, validation_split  # noqa: E402
from model.encoding import Vocabulary  # noqa: E402
from model.network import PAD, UNK, SentimentConfig, SentimentLSTM  # noqa: E402
from model.preprocess import tokenize  # noqa: E402
from model.progress import progress  # noqa: E402
from model.train import (batches, blend, branch_logits, evaluate, fit_bag, out_of_fold_logits,  # noqa: E402
                         parse_args)

DEFAULTS = parse_args([])  # training's hyperparameters; the LSTM's size is set per variant below
PREVIOUS = {"max_len": 50, "hidden": 32}  # the LSTM shipped before these experiments


def prepare(data: str):
    imdb = load_imdb(data, splits=("train", "unsup"))
    train_set, valid_set = validation_split(imdb.train, DEFAULTS.valid_fraction, DEFAULTS.seed)
    train_tokens = [tokenize(e.text) for e in progress(train_set, desc="tokenising train", unit=" reviews")]
    valid_tokens = [tokenize(e.text) for e in progress(valid_set, desc="tokenising validation", unit=" reviews")]
    unsup_tokens = [tokenize(t) for t in progress(imdb.unsup, desc="tokenising unlabelled", unit=" reviews")]
    vocabulary = Vocabulary.build(train_tokens, DEFAULTS.vocab_size, DEFAULTS.buckets)
    train_labels, valid_labels = [e.label for e in train_set], [e.label for e in valid_set]
    # phase one, exactly as model/train.py runs it
    bags = [vocabulary.bag(vocabulary.ids(t)) for t in train_tokens]
    folds = np.array(movie_folds(train_set, DEFAULTS.bag_folds, DEFAULTS.seed))
    out_of_fold = out_of_fold_logits(bags, train_labels, folds, vocabulary.ngram_size, DEFAULTS.bag_c)
    weights, intercept = fit_bag(bags, train_labels, vocabulary.ngram_size, DEFAULTS.bag_c)
    return dict(vocabulary=vocabulary, train_tokens=train_tokens, valid_tokens=valid_tokens,
                unsup_tokens=unsup_tokens, train_labels=train_labels, valid_labels=valid_labels,
                out_of_fold=out_of_fold, weights=weights, intercept=intercept)


def network_for(d, max_len: int, hidden: int, seed: int) -> SentimentLSTM:
    torch.manual_seed(seed)
    vocabulary = d["vocabulary"]
    config = SentimentConfig(vocab_size=vocabulary.vocab_size, ngram_size=vocabulary.ngram_size,
                             embed_dim=DEFAULTS.embed_dim, hidden_dim=hidden, dropout=DEFAULTS.dropout,
                             max_len=max_len)
    network = SentimentLSTM(config)
    with torch.no_grad():
        network.bag.weight.copy_(torch.from_numpy(d["weights"]).unsqueeze(1))
        network.bag_bias.fill_(d["intercept"])
        network.head.weight.zero_()
        network.head.bias.zero_()
    for p in [*network.bag.parameters(), network.bag_bias]:
        p.requires_grad_(False)
    return network


def word2vec(d, cache: Path):
    from gensim.models import Word2Vec  # the experiment's own dependency

    if cache.exists():
        return Word2Vec.load(str(cache))
    started = time.time()
    model = Word2Vec([*d["unsup_tokens"], *d["train_tokens"]], vector_size=DEFAULTS.embed_dim, window=5,
                     min_count=2, workers=2, sg=1, epochs=5, seed=1)
    model.save(str(cache))
    print(f"word2vec trained in {time.time() - started:.0f} s", file=sys.stderr)
    return model


def load_word2vec(network: SentimentLSTM, vectors, vocabulary: Vocabulary) -> None:
    embedding = network.embedding.weight.data
    scale = embedding.std().item() / float(np.std(vectors.wv.vectors))  # keep the initial scale
    for word, i in vocabulary.words.items():
        if word in vectors.wv:
            embedding[i] = torch.from_numpy(vectors.wv[word] * scale)


def pretrain_language_model(network: SentimentLSTM, d, output_words=8000, length=50, batch_size=128) -> float:
    """One epoch of next-word prediction over the head and tail of every
    unlabelled and training review; returns the last batch's loss."""
    vocabulary, sequences = d["vocabulary"], []
    for tokens in [*d["unsup_tokens"], *d["train_tokens"]]:
        ids = vocabulary.ids(tokens)
        sequences += [ids] if len(ids) <= length + 1 else [ids[: length + 1], ids[-length - 1 :]]
    output = torch.nn.Linear(network.config.hidden_dim, output_words)
    params = [*network.embedding.parameters(), *network.lstm.parameters(), *output.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-5)
    random.Random(0).shuffle(sequences)
    steps = math.ceil(len(sequences) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    for start in progress(range(0, len(sequences), batch_size), total=steps, desc="language model", unit=" batches"):
        chunk = sequences[start : start + batch_size]
        x = np.full((len(chunk), max(map(len, chunk))), PAD, dtype=np.int64)
        for row, ids in enumerate(chunk):
            x[row, : len(ids)] = ids
        x = torch.from_numpy(x)
        targets = x[:, 1:].clone()
        targets[targets >= output_words] = UNK
        targets[targets == PAD] = -100
        states, _ = network.lstm(network.embedding(x[:, :-1]))
        loss = torch.nn.functional.cross_entropy(output(states).reshape(-1, output_words), targets.reshape(-1),
                                                 ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
    return float(loss)


def phase_two(network: SentimentLSTM, d, seed: int, offset: bool = True) -> list[dict]:
    """The shipped phase-two loop; with offset=False the LSTM learns alone."""
    vocabulary, max_len = d["vocabulary"], network.config.max_len
    train = [vocabulary.encode(t, max_len) for t in d["train_tokens"]]
    valid = [vocabulary.encode(t, max_len) for t in d["valid_tokens"]]
    fixed = d["out_of_fold"] if offset else np.zeros_like(d["out_of_fold"])
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad],
                                  lr=DEFAULTS.lr, weight_decay=DEFAULTS.weight_decay)
    loss_fn, rng, history = torch.nn.BCEWithLogitsLoss(), random.Random(seed), []
    for epoch in range(1, DEFAULTS.epochs + 1):
        network.train()
        for tokens, lengths, bag, targets in batches(train, fixed, d["train_labels"], DEFAULTS.batch_size, rng):
            loss = loss_fn(network(tokens, lengths, bag_logits=bag), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
        history.append(stacked(network, valid, d["valid_labels"]) if not offset
                       else dict(zip(("valid_loss", "valid_acc"), evaluate(network, valid, d["valid_labels"])[:2])))
        history[-1]["epoch"] = epoch
        print(f"  epoch {epoch}: {history[-1]}", file=sys.stderr, flush=True)
    return history


def stacked(network: SentimentLSTM, valid, labels) -> dict:
    bag, lstm = branch_logits(network, valid)
    probs, _ = blend(bag, lstm, labels)
    y = np.asarray(labels)
    return {"valid_acc": float(np.mean((probs > 0.5) == (y == 1))),
            "valid_loss": float(-np.mean(np.log(np.where(y == 1, probs, 1 - probs) + 1e-7))),
            "lstm_alone_acc": float(np.mean((lstm > 0) == (y == 1)))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "unlabeled")
    p.add_argument("--seeds", type=int, nargs="+", default=[1337, 1])
    p.add_argument("--only", nargs="*", help="variant names (default: all)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    d = prepare(args.data)
    rows = []

    def run(name, max_len=PREVIOUS["max_len"], hidden=PREVIOUS["hidden"], vectors=False, frozen=False,
            language_model=False, offset=True):
        if args.only and name not in args.only:
            return
        for seed in args.seeds[:1] if language_model else args.seeds:  # one seed: 9 minutes a run
            print(f"{name}, seed {seed}", file=sys.stderr, flush=True)
            started, network = time.time(), network_for(d, max_len, hidden, seed)
            if vectors:
                load_word2vec(network, word2vec(d, args.out / "word2vec.model"), d["vocabulary"])
            if frozen:
                network.embedding.weight.requires_grad_(False)
            lm_loss = pretrain_language_model(network, d) if language_model else None
            history = phase_two(network, d, seed, offset)
            best = max(history, key=lambda h: (h["valid_acc"], -h["valid_loss"]))
            rows.append({"variant": name, "seed": seed, **best, "best_lm_loss": lm_loss,
                         "seconds": round(time.time() - started), "history": history})
            (args.out / "unlabeled.json").write_text(json.dumps(rows, indent=2))

    run("previous")
    run("word2vec", vectors=True)
    run("word2vec-frozen", max_len=200, vectors=True, frozen=True)
    run("stack", max_len=400, hidden=64, vectors=True, offset=False)
    run("lm", language_model=True)
    lines = ["| variant | seed | best epoch | validation acc. | validation loss | LSTM alone |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['variant']} | {r['seed']} | {r['epoch']} | {r['valid_acc'] * 100:.2f} % | {r['valid_loss']:.4f} "
              f"| {'%.2f %%' % (r['lstm_alone_acc'] * 100) if 'lstm_alone_acc' in r else ''} |" for r in rows]
    (args.out / "unlabeled.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
