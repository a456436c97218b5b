"""batch/shards.py: where a big upload is cut (every boundary case), the parts
its output is assembled from, and S3Store's multipart uploads against moto
(part copies, aborts)."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from batch import shards
from batch.s3store import S3Store


class MemoryStore:
    """shards.ObjectStore over a dict, counting what is read."""

    def __init__(self, objects: dict[tuple[str, str], bytes] | None = None):
        self.objects = dict(objects or {})
        self.bytes_read = 0
        self.largest_read = 0

    def read_range(self, bucket, key, start, end, version=None):
        data = self.objects[(bucket, key)][start:end]
        self.bytes_read += len(data)
        self.largest_read = max(self.largest_read, len(data))
        return data

    def write_parts(self, bucket, key, parts):
        body = b""
        for part in parts:
            if part.data is not None:
                body += part.data
            else:
                source = part.source
                body += self.objects[(source.bucket, source.key)][source.start:source.end]
        self.objects[(bucket, key)] = body

    def put(self, bucket, key, body, content_type):
        self.objects[(bucket, key)] = body

    def size(self, bucket, key):
        body = self.objects.get((bucket, key))
        return None if body is None else len(body)

    def get(self, bucket, key):
        return self.objects.get((bucket, key))

    def delete(self, bucket, keys):
        for key in keys:
            self.objects.pop((bucket, key), None)


def cut(data: bytes, nominal: int, window: int = 4, max_line: int = 1000) -> list[bytes]:
    """The shards of `data` (cut_points over an in-memory read)."""
    cuts = shards.cut_points(lambda start, end: data[start:end], len(data), nominal, max_line, window)
    return [data[start:end] for start, end in zip(cuts, [*cuts[1:], len(data)])]


# ------------------------------------------------------------ cutting


def test_a_line_across_a_read_window_is_found_in_the_next_window():
    data = b"short\n" + b"a line much longer than the search window\n" + b"last\n"
    assert cut(data, nominal=8, window=4) == [b"short\n" + b"a line much longer than the search window\n", b"last\n"]


def test_crlf_stays_together_when_the_nominal_cut_falls_between_cr_and_lf():
    data = b"abc\r\ndef\r\nghi\r\n"
    assert data[4:5] == b"\n"
    assert cut(data, nominal=4) == [b"abc\r\n", b"def\r\n", b"ghi\r\n"]


def test_no_final_newline_ends_the_last_shard():
    assert cut(b"one\ntwo\nthree", nominal=5) == [b"one\ntwo\n", b"three"]
    assert cut(b"one\ntwo\nthree-without-any-newline-at-all", nominal=9) == [b"one\ntwo\nthree-without-any-newline-at-all"]


def test_csv_has_no_header_so_the_first_line_is_a_record_of_the_first_shard_only():
    data = b"id,review\n1,great\n2,awful\n3,fine\n"
    pieces = cut(data, nominal=10)
    assert pieces == [b"id,review\n", b"1,great\n2,awful\n", b"3,fine\n"]
    assert sum(piece.count(b"id,review") for piece in pieces) == 1


def test_a_line_longer_than_a_shard_is_a_shard_of_its_own():
    lines = [b"x" * 30 + b"\n", b"y" * 30 + b"\n", b"z\n"]
    assert cut(b"".join(lines), nominal=3) == lines


def test_a_multibyte_character_across_a_nominal_cut_stays_whole():
    data = "été\n€uro ✓\n😀 smile\nend\n".encode()
    for nominal in range(1, len(data) + 1):
        pieces = cut(data, nominal=nominal, window=3)
        assert b"".join(pieces) == data
        for piece in pieces:
            piece.decode("utf-8")  # never a character cut in two
            assert piece.endswith(b"\n")


def test_an_exact_fit_makes_no_empty_shard():
    assert cut(b"aaaa\nbbbb\n", nominal=5) == [b"aaaa\n", b"bbbb\n"]


def test_a_line_longer_than_a_record_may_be_is_refused_with_where():
    with pytest.raises(shards.LineTooLong, match="after byte 8"):
        cut(b"abc\n" + b"x" * 100 + b"\nend\n", nominal=4, window=8, max_line=50)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=30),
       crlf=st.booleans(), final_newline=st.booleans(), nominal=st.integers(1, 40), window=st.integers(1, 9))
def test_shards_concatenated_are_the_file_and_each_ends_with_its_line(lines, crlf, final_newline, nominal, window):
    end = "\r\n" if crlf else "\n"
    text = end.join(line.replace("\n", " ").replace("\r", " ") for line in lines) + (end if final_newline else "")
    data = text.encode("utf-8")
    if not data:
        return
    pieces = cut(data, nominal=nominal, window=window)
    assert b"".join(pieces) == data
    assert all(pieces)
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    assert sum(piece.count(b"\n") for piece in pieces) == data.count(b"\n")


def test_shard_size_gives_each_instance_several_shards_within_s3_limits():
    assert shards.shard_bytes(1000, instances=2) == 125
    assert shards.shard_bytes(10 * shards.MAX_PART, instances=1) == shards.MAX_PART  # one instance: 10 shards
    assert shards.shard_bytes(10 * shards.MAX_PART, instances=1, headroom=100) == shards.MAX_PART - 100
    assert shards.shard_bytes(100 * shards.MAX_PART, instances=64) <= shards.MAX_PART
    with pytest.raises(shards.TooBig, match="at most 1,000 shards"):
        shards.shard_bytes(shards.MAX_SHARDS * shards.MAX_PART + 1, instances=16)
    with pytest.raises(shards.TooBig):
        shards.shard_bytes(100, instances=2, max_shards=3)


def test_should_shard_only_above_the_threshold_and_with_instances_to_share():
    assert shards.should_shard(101, 100, 2)
    assert not shards.should_shard(100, 100, 2)
    assert not shards.should_shard(10**12, 100, 1)
    assert not shards.should_shard(None, 100, 2)


def test_plan_and_split_read_only_windows_and_copy_the_rest():
    data = b"".join(f"review number {n}\n".encode() for n in range(10_000))
    store = MemoryStore({("in", "big.txt"): data})
    plan = shards.plan(store, job="job-1", bucket="in", key="big.txt", version=None, size=len(data), instances=4,
                       max_line=1000, window=64)
    assert len(plan.shards) == 16
    keys = shards.split(store, plan)
    assert keys == [f"critic-shards/job-1/in/{n:05d}" for n in range(16)]
    assert b"".join(store.objects[("in", key)] for key in keys) == data
    assert store.bytes_read <= 16 * 64  # a window per cut, never the file
    assert plan.output_keys()[0] == "critic-shards/job-1/out/00000.out"
    assert shards.Plan.from_json(plan.to_json()) == plan


class SlowStore(MemoryStore):
    """A store whose copies take simulated time: `seconds_per_byte` each."""

    def __init__(self, objects, seconds_per_byte: float):
        super().__init__(objects)
        self.now, self.seconds_per_byte = 0.0, seconds_per_byte

    def write_parts(self, bucket, key, parts):
        parts = list(parts)
        self.now += sum(part.size for part in parts) * self.seconds_per_byte
        super().write_parts(bucket, key, parts)


def slow_split(seconds: float, seconds_per_byte: float, reserve: float = 10.0):
    """A 188,890-byte file split in 16 shards by a function with `seconds` to
    run: (the store, what split returned or raised)."""
    data = b"".join(f"review number {n}\n".encode() for n in range(10_000))
    store = SlowStore({("in", "big.txt"): data}, seconds_per_byte)
    plan = shards.plan(store, job="job-1", bucket="in", key="big.txt", version=None, size=len(data), instances=4,
                       max_line=1000, window=64)
    try:
        return store, shards.split(store, plan, seconds_left=lambda: seconds - store.now, reserve=reserve,
                                   clock=lambda: store.now)
    except shards.OutOfTime as late:
        return store, late


def test_a_split_with_time_enough_writes_every_shard():
    store, keys = slow_split(seconds=60, seconds_per_byte=40 / 188_890)  # 40 s of copies, 10 s kept
    assert len(keys) == 16 and store.now == pytest.approx(40)


def test_a_split_that_would_outlast_the_function_stops_between_shards_with_what_fits():
    store, late = slow_split(seconds=60, seconds_per_byte=100 / 188_890)  # 100 s of copies in a 60 s function
    assert isinstance(late, shards.OutOfTime)
    # stopped while the next shard, twice over, and the reserve still fit: never past the deadline
    assert 0 < len(late.written) < 16 and store.now <= 60 - 10
    assert late.copied == sum(len(store.objects[("in", key)]) for key in late.written)
    assert late.budget_seconds == 50 and late.fits_bytes == pytest.approx(188_890 / 2, rel=1e-6)
    assert f"{len(late.written)} of 16 shards" in str(late) and "smaller files" in str(late)


def test_a_split_with_no_time_left_writes_nothing():
    store, late = slow_split(seconds=5, seconds_per_byte=1e-9)
    assert isinstance(late, shards.OutOfTime) and late.written == [] and late.fits_bytes is None
    assert "0 of 16 shards" in str(late) and list(store.objects) == [("in", "big.txt")]


# ------------------------------------------------------------ assembling


def parts_of(sizes: list[int], min_part: int = 10, max_part: int = 25) -> list[tuple[str, int]]:
    sources = [shards.Source("out", f"o{n}", 0, size) for n, size in enumerate(sizes)]
    store = MemoryStore({("out", f"o{n}"): bytes([65 + n]) * size for n, size in enumerate(sizes)})
    result = list(shards.assembly_parts(sources, lambda s: store.read_range(s.bucket, s.key, s.start, s.end),
                                        min_part, max_part))
    joined = b"".join(part.data if part.data is not None else
                      store.objects[(part.source.bucket, part.source.key)][part.source.start:part.source.end]
                      for part in result)
    assert joined == b"".join(bytes([65 + n]) * size for n, size in enumerate(sizes)), "input order"
    assert all(min_part <= part.size <= max_part or part is result[-1] for part in result)
    assert all(part.size <= 2 * min_part for part in result if part.data is not None)
    return [("copy" if part.source else "bytes", part.size) for part in result]


def test_large_outputs_are_copied_small_ones_read_and_sent_in_order():
    assert parts_of([12, 15]) == [("copy", 12), ("copy", 15)]
    assert parts_of([3, 4, 5]) == [("bytes", 12)]
    assert parts_of([3, 20]) == [("bytes", 10), ("copy", 13)]  # the head of the next tops up the small one
    assert parts_of([3, 12]) == [("bytes", 15)]  # topping up would leave under min_part to copy
    assert parts_of([12, 2]) == [("copy", 12), ("bytes", 2)]  # the last part may be small
    assert parts_of([60]) == [("copy", 25), ("copy", 25), ("copy", 10)]  # at most max_part each
    assert parts_of([55]) == [("copy", 25), ("copy", 20), ("copy", 10)]  # never a small piece but the last
    assert parts_of([0, 4, 0]) == [("bytes", 4)]


def test_assemble_writes_outputs_in_plan_order_not_listing_order():
    store = MemoryStore({("out", "b"): b"first\n", ("out", "a"): b"second\n"})
    shards.assemble(store, [shards.Source("out", "b", 0, 6), shards.Source("out", "a", 0, 7)], "out", "r.out")
    assert store.objects[("out", "r.out")] == b"first\nsecond\n"


# ------------------------------------------------------------ S3Store on moto


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("in-bucket", "out-bucket"):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_s3_split_and_assemble_with_part_copies_of_a_pinned_version(s3):
    data = "".join(f"{n} ✓ été\r\n" for n in range(400_000)).encode()
    version = s3.put_object(Bucket="in-bucket", Key="big.txt", Body=data)["VersionId"]
    s3.put_object(Bucket="in-bucket", Key="big.txt", Body=b"a newer upload\n")  # the plan's version is copied
    store = S3Store(s3)
    plan = shards.plan(store, job="j", bucket="in-bucket", key="big.txt", version=version, size=len(data),
                       instances=2, max_line=1 << 20)
    keys = shards.split(store, plan)
    assert b"".join(s3.get_object(Bucket="in-bucket", Key=key)["Body"].read() for key in keys) == data
    sources = [shards.Source("in-bucket", key, 0, store.size("in-bucket", key)) for key in keys]
    shards.assemble(store, sources, "out-bucket", "big.txt.out")
    assert s3.get_object(Bucket="out-bucket", Key="big.txt.out")["Body"].read() == data


def test_s3_assembly_copies_ranges_of_large_outputs_between_small_ones(s3):
    big = bytes(range(256)) * (12 * shards.MIB // 256)
    s3.put_object(Bucket="out-bucket", Key="a", Body=b"small head\n")
    s3.put_object(Bucket="out-bucket", Key="b", Body=big)
    s3.put_object(Bucket="out-bucket", Key="c", Body=b"small tail\n")
    store = S3Store(s3)
    sources = [shards.Source("out-bucket", key, 0, store.size("out-bucket", key)) for key in "abc"]
    read = lambda s: store.read_range(s.bucket, s.key, s.start, s.end)  # noqa: E731
    kinds = [("copy" if part.source else "bytes") for part in shards.assembly_parts(sources, read)]
    assert kinds == ["bytes", "copy", "bytes"]
    shards.assemble(store, sources, "out-bucket", "r.out")
    assert store.get("out-bucket", "r.out") == b"small head\n" + big + b"small tail\n"


def test_a_failed_assembly_leaves_no_object_and_no_open_upload(s3):
    s3.put_object(Bucket="out-bucket", Key="o1", Body=b"x" * (6 * shards.MIB))
    store = S3Store(s3)
    sources = [shards.Source("out-bucket", "o1", 0, 6 * shards.MIB), shards.Source("out-bucket", "gone", 0, 6 * shards.MIB)]
    with pytest.raises(ClientError):
        shards.assemble(store, sources, "out-bucket", "r.out")
    assert "Contents" not in s3.list_objects_v2(Bucket="out-bucket", Prefix="r.out")
    assert not s3.list_multipart_uploads(Bucket="out-bucket").get("Uploads")
    assert store.get("out-bucket", "r.out") is None and store.size("out-bucket", "r.out") is None
