"""Datasets load from every source with the shape and identity promised, bad files fail naming the
file and line or entry, and worker streams split a dataset without overlap."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llm_locust.errors import ConfigError
from llm_locust.workload.dataset import (
    Conversation,
    Dataset,
    DatasetInfo,
    DatasetSpec,
    Turn,
    load_dataset,
    package_path,
    parse_dataset_option,
)
from llm_locust.workload.lengths import LengthDist, parse_length
from llm_locust.workload.sampler import SampleStream
from llm_locust.workload.seed import seed_messages
from llm_locust.workload.tokenizer import Tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return load_tokenizer("cl100k_base")


def _jsonl(tmp_path: Path, *lines: str) -> DatasetSpec:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DatasetSpec("jsonl", str(path))


def _sharegpt(tmp_path: Path, entries: Any, **spec: Any) -> DatasetSpec:
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return DatasetSpec("sharegpt", str(path), **spec)


def _pair(human: str, gpt: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


# --- --dataset -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("prompt", ("prompt", None)),
        ("seed", ("seed", None)),
        ("synthetic", ("synthetic", None)),
        ("jsonl:data.jsonl", ("jsonl", "data.jsonl")),
        ("sharegpt:/x/y:z.json", ("sharegpt", "/x/y:z.json")),
    ],
)
def test_parse_dataset_option(text: str, parsed: tuple[str, str | None]) -> None:
    assert parse_dataset_option(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "bogus",
            "--dataset 'bogus' is unknown; choose one of prompt, seed, synthetic, jsonl:PATH, sharegpt:PATH",
        ),
        ("prompt:x", "--dataset 'prompt:x' is unknown; choose one of"),
        ("jsonl", "--dataset 'jsonl': give the file, as in jsonl:PATH"),
        ("sharegpt:", "--dataset 'sharegpt:': give the file, as in sharegpt:PATH"),
        ("", "--dataset '' is unknown"),
    ],
)
def test_parse_dataset_option_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dataset_option(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "csv"}, "--dataset 'csv' is unknown"),
        ({"source": "jsonl"}, "--dataset jsonl: give the file"),
        ({"source": "seed", "path": "x"}, "--dataset seed:x: only jsonl and sharegpt take a path"),
        ({"source": "synthetic", "turns": 0}, "--turns 0: must be at least 1"),
        ({"source": "synthetic", "num_samples": 0}, "--num-samples 0: must be at least 1"),
        (
            {"source": "synthetic", "shared_prefix_tokens": -2},
            "--shared-prefix-tokens -2: must be at least 0",
        ),
    ],
)
def test_spec_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DatasetSpec(**kwargs)
    assert str(info.value).startswith(message)


# --- prompt, seed, synthetic -----------------------------------------------------------------------


def test_prompt_source(tok: Tokenizer) -> None:
    ds = load_dataset(DatasetSpec("prompt", prompt="Say hi", system_prompt="Be brief"), None)
    assert ds.conversations == (Conversation("prompt", (Turn("Say hi"),), "Be brief"),)
    fixed = load_dataset(DatasetSpec("prompt", prompt="Say hi", output_tokens=LengthDist.fixed(64)), tok)
    assert fixed.conversations[0].turns == (Turn("Say hi", 64),)
    with pytest.raises(ConfigError, match="--dataset prompt needs a non-empty --prompt"):
        load_dataset(DatasetSpec("prompt"), None)


def test_prompt_source_with_varying_output_has_one_draw_per_copy() -> None:
    spec = DatasetSpec(
        "prompt", prompt="Say hi", output_tokens=parse_length("--output-tokens", "10:20"), num_samples=50
    )
    ds = load_dataset(spec, None)
    outputs = [c.turns[0].output_tokens for c in ds.conversations]
    assert len(outputs) == 50 and all(o is not None and 10 <= o <= 20 for o in outputs)
    assert len(set(outputs)) > 3
    assert {c.turns[0].user for c in ds.conversations} == {"Say hi"}
    assert load_dataset(spec, None) == ds


def test_seed_source() -> None:
    ds = load_dataset(DatasetSpec("seed"), None)
    system, user = seed_messages()
    assert ds.conversations == (Conversation("seed", (Turn(user["content"]),), system["content"]),)
    assert ds.info.name == "seed" and ds.info.conversations == 1 and ds.info.path is None


def test_synthetic_source(tok: Tokenizer) -> None:
    spec = DatasetSpec(
        "synthetic",
        input_tokens=parse_length("--input-tokens", "20:300"),
        output_tokens=parse_length("--output-tokens", "100", stdev=10),
        shared_prefix_tokens=12,
        turns=3,
        num_samples=40,
        seed=8,
    )
    ds = load_dataset(spec, tok)
    assert len(ds.conversations) == 40 == ds.info.conversations
    assert all(len(c.turns) == 3 and c.system == "" for c in ds.conversations)
    turns = [t for c in ds.conversations for t in c.turns]
    assert all(t.input_tokens is not None and tok.count(t.user) == t.input_tokens for t in turns)
    assert all(20 <= (t.input_tokens or 0) <= 300 for t in turns)
    assert len({t.input_tokens for t in turns}) > 20
    assert all(t.output_tokens is not None and 50 < t.output_tokens < 150 for t in turns)
    assert len({t.user for t in turns}) == len(turns)
    prefix = tok.encode(ds.conversations[0].turns[0].user)[:12]
    assert all(tok.encode(c.turns[0].user)[:12] == prefix for c in ds.conversations)
    assert not any(tok.encode(c.turns[1].user)[:12] == prefix for c in ds.conversations)
    assert load_dataset(spec, tok) == ds
    assert (
        load_dataset(DatasetSpec("synthetic", num_samples=5, seed=9), tok)
        .conversations[0]
        .turns[0]
        .output_tokens
        is None
    )


def test_synthetic_and_sharegpt_need_a_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--dataset synthetic counts tokens: give --tokenizer"):
        load_dataset(DatasetSpec("synthetic", num_samples=2), None)
    with pytest.raises(ConfigError, match=r"--dataset sharegpt:\S+ counts tokens"):
        load_dataset(_sharegpt(tmp_path, []), None)


def test_generated_identity(tok: Tokenizer) -> None:
    base = DatasetSpec("synthetic", num_samples=5, seed=1)
    info = load_dataset(base, tok).info
    assert (info.source, info.name, info.path, info.size_bytes, info.seed) == (
        "synthetic",
        "synthetic",
        None,
        None,
        1,
    )
    assert info.sha256 is not None and len(info.sha256) == 64
    assert load_dataset(DatasetSpec("synthetic", num_samples=5, seed=1), tok).info == info
    for other in [
        DatasetSpec("synthetic", num_samples=5, seed=2),
        DatasetSpec("synthetic", num_samples=6, seed=1),
        DatasetSpec("synthetic", num_samples=5, seed=1, input_tokens=LengthDist.fixed(256)),
        DatasetSpec("synthetic", num_samples=5, seed=1, shared_prefix_tokens=4),
        DatasetSpec("synthetic", num_samples=5, seed=1, turns=2),
        DatasetSpec("synthetic", num_samples=5, seed=1, output_tokens=LengthDist.fixed(9)),
    ]:
        assert load_dataset(other, tok).info.sha256 != info.sha256, other
    one = load_dataset(DatasetSpec("prompt", prompt="a"), None).info
    assert one.sha256 == load_dataset(DatasetSpec("prompt", prompt="a"), None).info.sha256
    assert one.sha256 != load_dataset(DatasetSpec("prompt", prompt="b"), None).info.sha256
    assert one.sha256 != load_dataset(DatasetSpec("prompt", prompt="a", system_prompt="s"), None).info.sha256
    # the input length does not shape a prompt source, so it does not change its identity
    assert (
        one.sha256
        == load_dataset(DatasetSpec("prompt", prompt="a", input_tokens=LengthDist.fixed(3)), None).info.sha256
    )
    assert json.loads(json.dumps(info.to_json())) == info.to_json()
    assert DatasetInfo(**info.to_json()) == info


# --- jsonl -----------------------------------------------------------------------------------------


def test_jsonl_shapes(tmp_path: Path) -> None:
    spec = _jsonl(
        tmp_path,
        json.dumps({"prompt": "one", "max_tokens": 7}),
        "",
        "   ",
        json.dumps(
            {
                "id": "chat",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "u1"},
                    {"role": "assistant", "content": "a1 from the file"},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "u2 "}, {"type": "text", "text": "parts"}],
                    },
                ],
                "max_tokens": 30,
                "extra": "ignored",
            }
        ),
        json.dumps(
            {"id": 12, "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}
        ),
    )
    ds = load_dataset(spec, None)
    assert ds.conversations == (
        Conversation("1", (Turn("one", 7),)),
        Conversation("chat", (Turn("u1", 30), Turn("u2 parts", 30)), "sys"),
        Conversation("12", (Turn("x"), Turn("y"))),
    )


def test_output_tokens_option_overrides_max_tokens(tmp_path: Path) -> None:
    spec = _jsonl(tmp_path, json.dumps({"prompt": "one", "max_tokens": 7}), json.dumps({"prompt": "two"}))
    spec = DatasetSpec("jsonl", spec.path, output_tokens=LengthDist.fixed(99))
    assert [c.turns[0].output_tokens for c in load_dataset(spec, None).conversations] == [99, 99]


def test_file_identity(tmp_path: Path) -> None:
    spec = _jsonl(tmp_path, json.dumps({"prompt": "one"}))
    assert spec.path is not None
    data = Path(spec.path).read_bytes()
    info = load_dataset(spec, None).info
    assert info == DatasetInfo(
        "jsonl",
        "data.jsonl",
        str(Path(spec.path).resolve()),
        len(data),
        hashlib.sha256(data).hexdigest(),
        1,
        0,
    )
    Path(spec.path).write_text(json.dumps({"prompt": "two"}) + "\n")
    assert load_dataset(spec, None).info.sha256 != info.sha256


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", 'expected a JSON object with "messages" or "prompt"'),
        ('"text"', 'expected a JSON object with "messages" or "prompt"'),
        ("{}", 'give exactly one of "messages" and "prompt"'),
        ('{"prompt": "a", "messages": []}', 'give exactly one of "messages" and "prompt"'),
        ('{"prompt": ""}', '"prompt" must be a non-empty string'),
        ('{"prompt": 5}', '"prompt" must be a non-empty string'),
        ('{"messages": "hi"}', '"messages" must be a list of {"role", "content"} objects'),
        ('{"messages": [{"role": "user"}]}', '"messages" must be a list of {"role", "content"} objects'),
        ('{"messages": ["hi"]}', '"messages" must be a list of {"role", "content"} objects'),
        (
            '{"messages": [{"role": "tool", "content": "x"}]}',
            "message 1 has role 'tool'; expected one of ['system', 'user', 'assistant']",
        ),
        (
            '{"messages": [{"role": "user", "content": 3}]}',
            'message 1: "content" must be a string or a list of {"type": "text", "text"} parts',
        ),
        (
            '{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
            'message 1: "content" must be a string or a list of {"type": "text", "text"} parts',
        ),
        ('{"messages": []}', "no user message"),
        ('{"messages": [{"role": "system", "content": "s"}]}', "no user message"),
        (
            '{"messages": [{"role": "user", "content": "u"}, {"role": "system", "content": "s"}]}',
            "message 2: one system message, before the first user message",
        ),
        (
            '{"messages": [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}, '
            '{"role": "user", "content": "u"}]}',
            "message 2: one system message, before the first user message",
        ),
        ('{"prompt": "a", "max_tokens": 0}', '"max_tokens" must be a whole number of tokens >= 1, not 0'),
        (
            '{"prompt": "a", "max_tokens": "9"}',
            "\"max_tokens\" must be a whole number of tokens >= 1, not '9'",
        ),
        (
            '{"prompt": "a", "max_tokens": true}',
            '"max_tokens" must be a whole number of tokens >= 1, not True',
        ),
        ('{"prompt": "a", "max_tokens": 2.5}', '"max_tokens" must be a whole number of tokens >= 1, not 2.5'),
        ('{"prompt": "a", "id": [1]}', '"id" must be a string or a number, not [1]'),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    spec = _jsonl(tmp_path, json.dumps({"prompt": "fine"}), "", bad, json.dumps({"prompt": "fine"}))
    with pytest.raises(ConfigError) as info:
        load_dataset(spec, None)
    assert str(info.value).startswith(f"--dataset jsonl:{spec.path} line 3: {message}")


def test_missing_unreadable_and_empty_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError) as info:
        load_dataset(DatasetSpec("jsonl", missing), None)
    assert str(info.value) == f"--dataset jsonl:{missing}: no such file"
    with pytest.raises(ConfigError, match=r"^--dataset sharegpt:\S+: cannot be read"):
        load_dataset(DatasetSpec("sharegpt", str(tmp_path)), load_tokenizer("cl100k_base"))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 15\)"):
        load_dataset(DatasetSpec("jsonl", str(latin)), None)
    with pytest.raises(ConfigError, match=r"no conversations left \(0 dropped"):
        load_dataset(_jsonl(tmp_path, ""), None)


def test_shipped_jsonl() -> None:
    ds = load_dataset(DatasetSpec("jsonl", str(package_path("sample.jsonl"))), None)
    assert ds.info.conversations == 20
    assert any(c.system for c in ds.conversations)
    assert any(len(c.turns) > 1 for c in ds.conversations)
    assert {t.output_tokens for c in ds.conversations for t in c.turns} > {None}
    with pytest.raises(ConfigError, match="not a file shipped"):
        package_path("nothing.json")


# --- sharegpt --------------------------------------------------------------------------------------


def test_shipped_sharegpt_through_the_vllm_filter(tok: Tokenizer) -> None:
    path = package_path("sample_sharegpt.json")
    ds = load_dataset(DatasetSpec("sharegpt", str(path)), tok)
    entries = json.loads(path.read_text())
    assert len(entries) == 52
    assert (ds.info.conversations, ds.info.dropped) == (44, 8)
    assert {c.id for c in ds.conversations} == {e["id"] for e in entries} - {f"drop_{i}" for i in range(8)}
    assert Counter(len(c.turns) for c in ds.conversations) == Counter(
        sum(m["from"] == "human" for m in e["conversations"])
        for e in entries
        if e["id"].startswith("sample_")
    )
    assert ds.info.size_bytes == path.stat().st_size
    assert ds.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sharegpt_multi_turn_output_lengths_are_the_answers(tok: Tokenizer) -> None:
    path = package_path("sample_sharegpt.json")
    entries = {e["id"]: e["conversations"] for e in json.loads(path.read_text())}
    ds = load_dataset(DatasetSpec("sharegpt", str(path)), tok)
    multi = [c for c in ds.conversations if len(c.turns) > 1]
    assert len(multi) >= 10
    for conv in multi:
        messages = entries[conv.id]
        humans = [i for i, m in enumerate(messages) if m["from"] == "human"]
        assert [t.user for t in conv.turns] == [messages[i]["value"] for i in humans]
        expected = [tok.count(messages[i + 1]["value"]) if i + 1 < len(messages) else None for i in humans]
        assert [t.output_tokens for t in conv.turns] == expected
    assert any(c.turns[-1].output_tokens is None for c in multi)  # a conversation ending on a question


@pytest.mark.parametrize(
    ("human", "gpt", "kept"),
    [
        ("one two three four", "five six seven eight", True),  # 4 and 4 tokens: the minimums
        ("one two three", "five six seven eight", False),
        ("one two three four", "five six seven", False),
        (" x" * 1024, "five six seven eight", True),  # prompt of 1024
        (" x" * 1025, "five six seven eight", False),
        (" x" * 1000, " y" * 1048, True),  # total of 2048
        (" x" * 1000, " y" * 1049, False),
    ],
)
def test_sharegpt_filter_boundaries(tmp_path: Path, tok: Tokenizer, human: str, gpt: str, kept: bool) -> None:
    spec = _sharegpt(
        tmp_path,
        [
            {"id": "ok", "conversations": _pair("a b c d e", "f g h i j")},
            {"id": "t", "conversations": _pair(human, gpt)},
        ],
    )
    ds = load_dataset(spec, tok)
    assert ("t" in {c.id for c in ds.conversations}) == kept
    assert ds.info.dropped == (0 if kept else 1)


def test_sharegpt_filter_only_looks_at_the_first_pair(tmp_path: Path, tok: Tokenizer) -> None:
    long_second = _pair("a b c d e", "f g h i j") + _pair(" x" * 3000, "no")
    first_gpt = [{"from": "gpt", "value": "a b c d e"}, *_pair("a b c d e", "f g h i j")]
    system_first = [{"from": "system", "value": "sys"}, *_pair("a b c d e", "f g h i j")]
    spec = _sharegpt(
        tmp_path,
        [
            {"id": "long", "conversations": long_second},
            {"id": "gpt", "conversations": first_gpt},
            {"id": "sys", "conversations": system_first},
            {"id": "one", "conversations": _pair("a b c d e", "f g h i j")[:1]},
            {"id": "two_humans", "conversations": [{"from": "human", "value": "a b c d e"}] * 2},
            {"conversations": _pair("a b c d e", "f g h i j")},
        ],
    )
    ds = load_dataset(spec, tok)
    assert [c.id for c in ds.conversations] == ["long", "5"]
    assert [t.output_tokens for t in ds.conversations[0].turns] == [5, tok.count("no")]


def test_sharegpt_output_option_replaces_answers_and_their_minimum(tmp_path: Path, tok: Tokenizer) -> None:
    short = {"id": "short", "conversations": _pair("a b c d e", "no") + _pair("more please", "ok")}
    with pytest.raises(ConfigError, match=r"no conversations left \(1 dropped by the filter\)"):
        load_dataset(_sharegpt(tmp_path, [short]), tok)
    entries = [{"id": "ok", "conversations": _pair("a b c d e", "f g h i j")}, short]
    assert load_dataset(_sharegpt(tmp_path, entries), tok).info.dropped == 1
    spec = _sharegpt(tmp_path, entries, output_tokens=LengthDist.fixed(300))
    ok, conv = load_dataset(spec, tok).conversations
    assert [t.output_tokens for t in conv.turns] == [300, 300]
    assert [t.output_tokens for t in ok.turns] == [300]
    spec = _sharegpt(tmp_path, entries, output_tokens=LengthDist.fixed(2044))  # 5 + 2044 > 2048
    with pytest.raises(ConfigError, match=r"\(2 dropped"):
        load_dataset(spec, tok)
    spec = _sharegpt(tmp_path, entries, output_tokens=LengthDist.fixed(2043))
    assert load_dataset(spec, tok).info.dropped == 0


def test_sharegpt_roles_from_other_exports(tmp_path: Path, tok: Tokenizer) -> None:
    conv = [
        {"from": "user", "value": "a b c d e"},
        {"from": "chatgpt", "value": "f g h i j"},
        {"from": "system", "value": "ignored"},
        {"from": "human", "value": "k l m"},
        {"from": "bing", "value": "n o p q"},
    ]
    (out,) = load_dataset(_sharegpt(tmp_path, [{"id": "x", "conversations": conv}]), tok).conversations
    assert out == Conversation("x", (Turn("a b c d e", 5), Turn("k l m", 4)))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"conversations": []}, ": expected a JSON list of conversations, got an object"),
        ("x", ": expected a JSON list of conversations, got a string"),
        ([{"conversations": []}, 3], ' entry 1: expected an object with "conversations", got int'),
        ([{"id": "a"}], ' entry 0: "conversations" must be a list of {"from", "value"} objects'),
        (
            [{"conversations": [{"from": "human"}]}],
            ' entry 0: "conversations" must be a list of {"from", "value"}',
        ),
        ([{"conversations": [{"from": "human", "value": 1}]}], ' entry 0: "conversations" must be a list'),
        ([{"conversations": [{"from": 1, "value": "v"}]}], ' entry 0: "conversations" must be a list'),
        (
            [{"conversations": []}, {"conversations": [{"from": "robot", "value": "v"}]}],
            " entry 1: message 0 is from 'robot'; expected one of",
        ),
        (
            [{"id": None, "conversations": []}, {"id": {}, "conversations": []}],
            ' entry 1: "id" must be a string',
        ),
    ],
)
def test_sharegpt_bad_shapes_name_the_entry(
    tmp_path: Path, tok: Tokenizer, entries: Any, message: str
) -> None:
    spec = _sharegpt(tmp_path, entries)
    with pytest.raises(ConfigError) as info:
        load_dataset(spec, tok)
    assert str(info.value).startswith(f"--dataset sharegpt:{spec.path}{message}")


def test_sharegpt_invalid_json(tmp_path: Path, tok: Tokenizer) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"conversations": [}]')
    with pytest.raises(ConfigError, match=r"^--dataset sharegpt:\S+broken\.json: not valid JSON \(.*line 1"):
        load_dataset(DatasetSpec("sharegpt", str(path)), tok)


# --- SampleStream ----------------------------------------------------------------------------------


def _dataset(n: int) -> Dataset:
    convs = tuple(Conversation(str(i), (Turn(f"u{i}"),)) for i in range(n))
    return Dataset(DatasetInfo("prompt", "t", None, None, None, n, 0), convs)


def _round_robin(streams: list[SampleStream], draws: int) -> list[str]:
    return [streams[i % len(streams)].next().id for i in range(draws)]


@pytest.mark.parametrize("order", ["sequential", "random"])
@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("size", [12, 13, 100])
def test_workers_take_disjoint_shares_until_the_dataset_is_used_up(
    order: str, workers: int, size: int
) -> None:
    ds = _dataset(size)
    streams = [SampleStream(ds, order, 5, w, workers) for w in range(workers)]
    drawn = _round_robin(streams, 2 * size)
    assert sorted(drawn[:size], key=int) == [str(i) for i in range(size)]
    # the next pass goes through every conversation once more
    assert sorted(drawn[size:], key=int) == [str(i) for i in range(size)]


def test_sequential_strides() -> None:
    ds = _dataset(7)
    assert [SampleStream(ds, "sequential", 0, 1, 3).next().id for _ in range(1)] == ["1"]
    stream = SampleStream(ds, "sequential", 0, 1, 3)
    assert [stream.next().id for _ in range(5)] == ["1", "4", "0", "3", "6"]
    single = SampleStream(ds)
    assert [next(single).id for _ in range(9)] == ["0", "1", "2", "3", "4", "5", "6", "0", "1"]


def test_random_order_is_reproducible_and_depends_on_the_seed() -> None:
    ds = _dataset(50)
    one = [SampleStream(ds, "random", 3).next().id for _ in range(1)]
    a = SampleStream(ds, "random", 3)
    b = SampleStream(ds, "random", 3)
    c = SampleStream(ds, "random", 4)
    order_a = [a.next().id for _ in range(50)]
    assert order_a[:1] == one
    assert order_a == [b.next().id for _ in range(50)]
    assert order_a != [c.next().id for _ in range(50)]
    assert order_a != [str(i) for i in range(50)]
    assert sorted(order_a, key=int) == [str(i) for i in range(50)]
    assert [a.next().id for _ in range(50)] == order_a  # every pass in the same order


def test_sample_stream_refuses_bad_arguments() -> None:
    ds = _dataset(3)
    for args in [("shuffled", 0, 0, 1), ("random", 0, 2, 2), ("random", 0, -1, 2), ("random", 0, 0, 0)]:
        with pytest.raises(ValueError):
            SampleStream(ds, *args)
    with pytest.raises(ValueError, match="at least one conversation"):
        SampleStream(_dataset(0))
