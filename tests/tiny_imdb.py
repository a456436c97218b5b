"""A tiny dataset in the official aclImdb layout, with reviews a small model
can learn in seconds: positive ones use praise, negative ones scorn."""
from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Options of model/train.py for a small model that learns the tiny data in seconds.
TINY_TRAINING_ARGS = ["--epochs", "6", "--batch-size", "16", "--lr", "0.01", "--embed-dim", "16",
                      "--hidden-dim", "16", "--patience", "6", "--threads", "1", "--buckets", "5003",
                      "--bag-folds", "3", "--dropout", "0.1"]
REVIEWS_PER_MOVIE = 5  # as on IMDB, a movie has several reviews: splits must keep them together

PRAISE = ["great", "wonderful", "brilliant", "loved", "superb", "moving", "beautiful", "masterpiece",
          "excellent", "funny", "charming", "best"]
SCORN = ["awful", "terrible", "boring", "hated", "dull", "waste", "worst", "stupid", "poor",
         "mess", "bad", "tedious"]
FILLER = ["the", "film", "movie", "plot", "actors", "story", "scene", "director", "was", "and",
          "it", "a", "this", "ending", "music", "cast", "camera", "script"]


def review(rng: random.Random, positive: bool) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(12, 40))]
    for _ in range(rng.randint(2, 4)):
        words.insert(rng.randrange(len(words)), rng.choice(PRAISE if positive else SCORN))
    text = " ".join(words).capitalize() + "."
    return text.replace(" and ", " and<br /><br />", 1)  # the markup IMDB reviews carry


def make_tiny_imdb(path: Path, per_class: int = 150, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, text: str) -> None:
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("README", "tiny test copy of the aclImdb layout\n")
        for split in ("train", "test"):
            for kind, positive in (("pos", True), ("neg", False)):
                for i in range(per_class):
                    rating = rng.randint(7, 10) if positive else rng.randint(1, 4)
                    add(f"{split}/{kind}/{i}_{rating}.txt", review(rng, positive))
                # line i: review i's movie page; test/'s movies are not train/'s
                first = 1000 if split == "train" else 5000
                add(f"{split}/urls_{kind}.txt", "".join(
                    f"http://www.imdb.com/title/tt{first + i // REVIEWS_PER_MOVIE:07d}/usercomments\n"
                    for i in range(per_class)))
        for i in range(20):
            add(f"train/unsup/{i}_0.txt", review(rng, rng.random() < 0.5))
    return path
