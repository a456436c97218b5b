import hashlib
import tarfile
from collections import Counter

import pytest

from model import data
from model.data import DataError, load_imdb, movie_folds, validation_split


def test_reads_the_tarball_without_unpacking_it(tiny_imdb_tarball, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imdb = load_imdb(tiny_imdb_tarball)
    assert len(imdb.train) == len(imdb.test) == 300 and len(imdb.unsup) == 20
    assert {e.label for e in imdb.train} == {0, 1}
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_reads_the_unpacked_folder_the_same(tiny_imdb_tarball, tmp_path):
    with tarfile.open(tiny_imdb_tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    assert load_imdb(tmp_path / "aclImdb").train == load_imdb(tiny_imdb_tarball).train


def test_only_the_splits_asked_for(tiny_imdb_tarball):
    imdb = load_imdb(tiny_imdb_tarball, splits=("test",))
    assert imdb.test and not imdb.train and not imdb.unsup


def test_reviews_know_their_movie(tiny_imdb_tarball):
    train = load_imdb(tiny_imdb_tarball).train
    assert {e.movie for e in train} == {f"tt{1000 + i:07d}" for i in range(30)}  # 150 reviews / 5 per movie
    assert Counter(e.movie for e in train).most_common(1)[0][1] == 10  # five positive, five negative


def test_a_review_without_its_urls_line_is_its_own_movie(tmp_path):
    root = tmp_path / "aclImdb" / "train"
    for kind in ("pos", "neg"):
        (root / kind).mkdir(parents=True)
        (root / kind / "0_8.txt").write_text("fine")
    assert sorted(e.movie for e in load_imdb(tmp_path / "aclImdb").train) == ["train/neg/0", "train/pos/0"]


def test_validation_split_is_by_movie_seeded_and_disjoint(tiny_imdb_tarball):
    train = load_imdb(tiny_imdb_tarball).train
    a_train, a_valid = validation_split(train, 0.2, seed=7)
    b_train, b_valid = validation_split(train, 0.2, seed=7)
    c_train, c_valid = validation_split(train, 0.2, seed=8)
    assert a_valid == b_valid and a_valid != c_valid
    assert len(a_valid) == 60 and sum(e.label for e in a_valid) == 30
    assert not {e.movie for e in a_train} & {e.movie for e in a_valid}  # as test/ is to train/
    assert sorted(a_train + a_valid) == sorted(train)


def test_movie_folds_keep_each_movie_in_one_fold(tiny_imdb_tarball):
    train = load_imdb(tiny_imdb_tarball).train
    folds = movie_folds(train, 3, seed=1)
    fold_of = {}
    for review, fold in zip(train, folds):
        assert fold_of.setdefault(review.movie, fold) == fold
    assert sorted(Counter(folds).values()) == [100, 100, 100]


@pytest.mark.parametrize("make", [
    lambda p: p / "missing.tar.gz",
    lambda p: (p / "junk.tar.gz").write_bytes(b"not a tarball") and p / "junk.tar.gz",
    lambda p: p,  # a folder with no reviews
])
def test_bad_paths_are_clear_errors(tmp_path, make):
    with pytest.raises(DataError):
        load_imdb(make(tmp_path))


def test_download_checks_and_caches(tiny_imdb_tarball, tmp_path, monkeypatch):
    payload = tiny_imdb_tarball.read_bytes()
    monkeypatch.setattr(data, "OFFICIAL_MD5", hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(data, "OFFICIAL_SIZE", len(payload))
    url = tiny_imdb_tarball.as_uri()
    target = data.download(url, tmp_path / "cache")
    assert target.read_bytes() == payload
    assert data.download("file:///nonexistent", tmp_path / "cache") == target  # cached: no second fetch


def test_download_with_a_wrong_checksum_keeps_nothing(tiny_imdb_tarball, tmp_path):
    with pytest.raises(DataError, match="checksum"):
        data.download(tiny_imdb_tarball.as_uri(), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_failure_says_how_to_pass_a_path(tmp_path):
    with pytest.raises(DataError, match="--data"):
        data.download("file:///nonexistent/aclImdb_v1.tar.gz", tmp_path / "cache")
