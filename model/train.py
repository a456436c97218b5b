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

import torch
from model.progress import progress

from model.data import load_imdb, validation_split
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
    p.add_argument("--vocab-size", type=int, default=30_000)
    p.add_argument("--bigrams", type=int, default=60_000, help="bigrams in the bag branch (0: none)")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--bag-dim", type=int, default=16)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.4)
    p.add_argument("--no-lstm", action="store_true", help="ablation: the bag branch alone")
    # optimisation
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--bag-epochs", type=int, default=0,
                   help="first train the bag branch alone for this many epochs, then freeze it and "
                        "train the LSTM on what the bag misses (0: train both together)")
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


def batches(encoded, labels, batch_size, rng):
    """Batches of similar length (less padding), in random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]) + rng.random() * 8))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    for chunk in chunks:
        yield collate([encoded[i] for i in chunk]), torch.tensor([labels[i] for i in chunk], dtype=torch.float)


def evaluate(network, encoded, labels, lstm=True):
    probs = score_encoded(network, encoded, batch_size=512, lstm=lstm)
    eps = 1e-7
    loss = -sum(math.log(p + eps) if y else math.log(1 - p + eps) for p, y in zip(probs, labels)) / len(labels)
    return loss, probs


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

    # data: train/ only; a seeded, stratified validation split chooses the epoch
    imdb = load_imdb(find_dataset(args.data), splits=("train",))
    examples = imdb.train
    if args.limit:
        examples = random.Random(args.seed).sample(examples, min(args.limit, len(examples)))
    train_set, valid_set = validation_split(examples, args.valid_fraction, args.seed)
    train_tokens = [tokenize(text) for text, _ in progress(train_set, desc="preprocessing train", unit=" reviews")]
    valid_tokens = [tokenize(text) for text, _ in progress(valid_set, desc="preprocessing validation", unit=" reviews")]
    train_labels = [y for _, y in train_set]
    valid_labels = [y for _, y in valid_set]

    # vocabulary, from the training part only
    vocabulary = Vocabulary.build(train_tokens, args.vocab_size, args.bigrams)
    config = SentimentConfig(
        vocab_size=vocabulary.vocab_size,
        ngram_size=vocabulary.ngram_size,
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        bag_dim=args.bag_dim,
        dropout=args.dropout,
        max_len=args.max_len,
        use_lstm=not args.no_lstm,
    )
    train_encoded = [vocabulary.encode(t, config.max_len) for t in train_tokens]
    valid_encoded = [vocabulary.encode(t, config.max_len) for t in valid_tokens]

    network = SentimentLSTM(config)
    two_phase = bool(args.bag_epochs and config.use_lstm and config.ngram_size)
    if two_phase:
        # The head reads the LSTM's features through zero weights until phase
        # two: the phase-one model is exactly the bag model.
        with torch.no_grad():
            network.head.weight[:, : network.lstm_features] = 0

    def make_optimizer(phase: int):
        if phase == 2:  # the bag branch is frozen; the LSTM learns what it misses
            for p in network.bag.parameters():
                p.requires_grad_(False)
        params = [p for p in network.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)

    def phase_of(epoch: int) -> int:
        return 1 if two_phase and epoch <= args.bag_epochs else 2

    optimizer = make_optimizer(phase_of(1))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history: list[dict] = []
    best = {"valid_acc": -1.0, "valid_loss": float("inf"), "epoch": 0, "state": None}
    first_epoch = 1
    checkpoint_path = model_dir / CHECKPOINT
    if args.resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, weights_only=True)
        network.load_state_dict(checkpoint["network"])
        history, best = checkpoint["history"], checkpoint["best"]
        torch.set_rng_state(checkpoint["torch_rng"])  # dropout continues as if never stopped
        first_epoch = len(history) + 1
        optimizer = make_optimizer(phase_of(first_epoch))
        if phase_of(first_epoch) == phase_of(first_epoch - 1):  # else a new phase starts afresh
            optimizer.load_state_dict(checkpoint["optimizer"])
        print(f"resuming after epoch {len(history)}", file=sys.stderr)
    rng = random.Random(args.seed)
    for _ in range(first_epoch - 1):  # replay the batch order of the epochs done
        list(batches(train_encoded, train_labels, args.batch_size, rng))

    steps_per_epoch = math.ceil(len(train_encoded) / args.batch_size)
    for epoch in range(first_epoch, args.epochs + 1):
        phase = phase_of(epoch)
        if phase == 2 and epoch > 1 and phase_of(epoch - 1) == 1:
            network.load_state_dict(best["state"])  # the best bag model, then the LSTM on top
            # The model shipped is a phase-two one: it reads the LSTM.
            best = {**best, "valid_acc": -1.0, "valid_loss": float("inf")}
            optimizer = make_optimizer(2)
            print(f"phase two: bag frozen, training the LSTM from epoch {epoch}", file=sys.stderr)
        network.train()
        epoch_started, seen, total_loss, correct = time.time(), 0, 0.0, 0
        bar = progress(batches(train_encoded, train_labels, args.batch_size, rng), total=steps_per_epoch,
                   desc=f"epoch {epoch}/{args.epochs}", unit=" batches")
        for inputs, targets in bar:
            logits = network(*inputs, lstm=phase == 2)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            seen += len(targets)
            total_loss += loss.item() * len(targets)
            correct += int(((logits > 0).float() == targets).sum())
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")

        valid_loss, valid_probs = evaluate(network, valid_encoded, valid_labels, lstm=phase == 2)
        valid_acc = sum((p > 0.5) == bool(y) for p, y in zip(valid_probs, valid_labels)) / len(valid_labels)
        history.append({"epoch": epoch, "phase": phase, "train_loss": total_loss / seen, "train_acc": correct / seen,
                        "valid_loss": valid_loss, "valid_acc": valid_acc,
                        "seconds": round(time.time() - epoch_started, 1)})
        # SageMaker's metric definitions read these lines from the log.
        print(f"epoch={epoch} train_loss={total_loss / seen:.4f} train_acc={correct / seen:.4f} "
              f"valid_loss={valid_loss:.4f} valid_acc={valid_acc:.4f}", flush=True)
        # Chosen by validation accuracy, the figure reported; loss breaks ties.
        if (valid_acc, -valid_loss) > (best["valid_acc"], -best["valid_loss"]):
            best = {"valid_acc": valid_acc, "valid_loss": valid_loss, "epoch": epoch,
                    "state": {k: v.clone() for k, v in network.state_dict().items()}}
        torch.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                    "history": history, "best": best, "torch_rng": torch.get_rng_state()},
                   checkpoint_path.with_suffix(".tmp"))
        checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)
        if epoch - best["epoch"] >= args.patience and (phase == 2 or not two_phase):
            print(f"early stop: no validation gain since epoch {best['epoch']}", file=sys.stderr)
            break

    # artifact: the best epoch's weights, the vocabulary, the config and the code
    network.load_state_dict(best["state"])
    write_model_dir(model_dir, network, vocabulary)
    checkpoint_path.unlink(missing_ok=True)

    # report on the validation split (test/ is reported once, by `critic evaluate`)
    _, valid_probs = evaluate(network, valid_encoded, valid_labels)
    metrics = {
        "validation": binary_metrics(valid_labels, valid_probs),
        "best_epoch": best["epoch"],
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
