"""Synthetic prompts have exactly the asked-for token count, unique or shared prefixes as asked, and
the same text for the same seed; length options parse or fail naming the option."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from llm_locust.errors import ConfigError
from llm_locust.workload.lengths import LengthDist, parse_length
from llm_locust.workload.seed import package_text
from llm_locust.workload.synthetic import SyntheticPrompts, synthetic_prompt, synthetic_prompts, vocabulary
from llm_locust.workload.tokenizer import Tokenizer, load_tokenizer

LENGTHS = [*range(1, 130), 200, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 2047, 2048, 3000, 4095, 4096]


def _corpus() -> list[str]:
    words = package_text("words.txt").split()
    return [package_text("seed_prompt.txt"), " ".join(words), " ".join(reversed(words))]


@pytest.fixture(scope="module")
def cl100k() -> Tokenizer:
    return load_tokenizer("cl100k_base")


@pytest.fixture(scope="module")
def bpe_json(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """A GPT-2 style byte-level BPE trained here on English text, loaded from its tokenizer.json."""
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HF(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    hf.train_from_iterator(_corpus(), trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    hf.save(str(path))
    return load_tokenizer(str(path))


@pytest.fixture(scope="module")
def wordlevel_json(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    from tokenizers import Tokenizer as HF
    from tokenizers import models, pre_tokenizers, trainers

    hf = HF(models.WordLevel(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator(
        _corpus(), trainers.WordLevelTrainer(special_tokens=["[UNK]"], show_progress=False)
    )
    path = tmp_path_factory.mktemp("wordlevel") / "tokenizer.json"
    hf.save(str(path))
    return load_tokenizer(str(path))


@pytest.fixture(params=["cl100k", "bpe_json", "wordlevel_json"])
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _max_pairwise_lcp(encoded: list[list[int]]) -> int:
    """The longest prefix any two share: among sorted sequences it is between neighbours."""
    ordered = sorted(encoded)
    return max(_lcp(a, b) for a, b in itertools.pairwise(ordered))


def test_encode_and_decode_agree_with_count(tokenizer: Tokenizer) -> None:
    text = "the cold river and the green hill"
    ids = tokenizer.encode(text)
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    assert len(ids) == tokenizer.count(text)
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("shared", [0, 7, 300])
def test_every_length_is_exact(tokenizer: Tokenizer, shared: int) -> None:
    builder = SyntheticPrompts(tokenizer, seed=11, shared_prefix_tokens=shared)
    for i, n in enumerate(LENGTHS):
        assert tokenizer.count(builder.prompt(n, i)) == n, (tokenizer.name, shared, n)


def test_random_lengths_are_exact(cl100k: Tokenizer) -> None:
    lengths = [random.Random(5).randint(1, 4096) for _ in range(100)]
    prompts = synthetic_prompts(cl100k, lengths, seed=5, shared_prefix_tokens=16)
    assert [cl100k.count(p) for p in prompts] == lengths


def test_a_tokenizer_without_english_words_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as HF
    from tokenizers import models, pre_tokenizers

    hf = HF(models.WordLevel({"[UNK]": 0, "the": 1, "cat": 2}, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    with pytest.raises(ConfigError, match=r"--tokenizer .*only 2 of \d+ common English words"):
        SyntheticPrompts(load_tokenizer(str(path)))


def test_unknown_words_are_not_in_the_vocabulary(wordlevel_json: Tokenizer) -> None:
    """A WordLevel tokenizer maps an unseen word to one [UNK] token: such words are left out."""
    vocab = vocabulary(wordlevel_json)
    assert vocab
    assert all(wordlevel_json.decode(wordlevel_json.encode(w)) == w for w in vocab)


def test_prompts_share_no_prefix_beyond_the_unique_tag(tokenizer: Tokenizer) -> None:
    builder = SyntheticPrompts(tokenizer, seed=3)
    encoded = [tokenizer.encode(builder.prompt(64, i)) for i in range(400)]
    assert _max_pairwise_lcp(encoded) < builder.unique_tokens
    assert len({e[0] for e in encoded}) > 1  # not even the first token is common to all


def test_consecutive_indices_differ_at_the_first_token(cl100k: Tokenizer) -> None:
    builder = SyntheticPrompts(cl100k, seed=0)
    firsts = [cl100k.encode(builder.prompt(32, i))[0] for i in range(len(vocabulary(cl100k)))]
    assert len(set(firsts)) == len(firsts)


@pytest.mark.parametrize("n_shared", [1, 16, 100])
def test_shared_prefix_is_exactly_n_tokens(tokenizer: Tokenizer, n_shared: int) -> None:
    builder = SyntheticPrompts(tokenizer, seed=9, shared_prefix_tokens=n_shared)
    assert tokenizer.count(builder.shared_prefix) == n_shared
    prefix = tokenizer.encode(builder.shared_prefix)
    encoded = [tokenizer.encode(builder.prompt(n_shared + 50, i)) for i in range(200)]
    assert all(e[:n_shared] == prefix for e in encoded)
    assert len({e[n_shared] for e in encoded}) > 1  # all share the N tokens and not one more
    assert _max_pairwise_lcp(encoded) < n_shared + builder.unique_tokens


def test_later_turns_leave_the_shared_prefix_out(cl100k: Tokenizer) -> None:
    builder = SyntheticPrompts(cl100k, seed=9, shared_prefix_tokens=20)
    later = builder.prompt(40, 1, shared_prefix=False)
    assert not later.startswith(builder.shared_prefix)
    assert cl100k.count(later) == 40


def test_a_prompt_shorter_than_the_shared_prefix_is_its_start(cl100k: Tokenizer) -> None:
    builder = SyntheticPrompts(cl100k, seed=2, shared_prefix_tokens=30)
    short = builder.prompt(10, 4)
    assert cl100k.count(short) == 10
    assert cl100k.encode(short) == cl100k.encode(builder.shared_prefix)[:10]


def test_same_seed_same_prompts_whatever_the_order(cl100k: Tokenizer) -> None:
    one = SyntheticPrompts(cl100k, seed=42, shared_prefix_tokens=8)
    two = SyntheticPrompts(cl100k, seed=42, shared_prefix_tokens=8)
    forward = [one.prompt(100, i) for i in range(20)]
    backward = [two.prompt(100, i) for i in reversed(range(20))][::-1]
    assert forward == backward
    assert synthetic_prompt(cl100k, 100, 3, seed=42, shared_prefix_tokens=8) == forward[3]
    other = SyntheticPrompts(cl100k, seed=43, shared_prefix_tokens=8)
    assert other.shared_prefix != one.shared_prefix
    assert all(other.prompt(100, i) != forward[i] for i in range(20))


def test_bad_arguments() -> None:
    tok = load_tokenizer("cl100k_base")
    with pytest.raises(ConfigError, match="--shared-prefix-tokens -1"):
        SyntheticPrompts(tok, shared_prefix_tokens=-1)
    builder = SyntheticPrompts(tok)
    with pytest.raises(ValueError, match="at least 1 token"):
        builder.prompt(0, 0)
    with pytest.raises(ValueError, match="index"):
        builder.prompt(5, -1)


# --- lengths ---------------------------------------------------------------------------------------


def test_fixed_length() -> None:
    dist = parse_length("--input-tokens", "512")
    assert dist == LengthDist(512, 512) and dist.is_fixed and dist.describe() == "512"
    rng = random.Random(0)
    assert {dist.draw(rng) for _ in range(50)} == {512}


def test_uniform_range_includes_both_ends() -> None:
    dist = parse_length("--input-tokens", " 10:14 ")
    assert (dist.low_tokens, dist.high_tokens, dist.describe()) == (10, 14, "10:14")
    rng = random.Random(1)
    assert {dist.draw(rng) for _ in range(500)} == {10, 11, 12, 13, 14}
    assert dist.mean_tokens == 12


def test_normal_around_a_fixed_value_clipped_to_one() -> None:
    dist = parse_length("--output-tokens", "200", stdev=20)
    assert not dist.is_fixed and dist.describe() == "200~20"
    rng = random.Random(2)
    draws = [dist.draw(rng) for _ in range(4000)]
    assert 198 < sum(draws) / len(draws) < 202
    assert 17 < (sum((d - 200) ** 2 for d in draws) / len(draws)) ** 0.5 < 23
    wide = parse_length("--output-tokens", "3", stdev=50)
    wide_draws = [wide.draw(rng) for _ in range(2000)]
    assert min(wide_draws) == 1 and all(isinstance(d, int) for d in wide_draws)


def test_draws_are_reproducible() -> None:
    dist = parse_length("--input-tokens", "1:4096")
    assert [dist.draw(random.Random(7)) for _ in range(3)] == [dist.draw(random.Random(7)) for _ in range(3)]


@pytest.mark.parametrize(
    ("text", "stdev", "message"),
    [
        ("12:3", 0.0, "--input-tokens '12:3': the low end is above the high end"),
        ("", 0.0, "--input-tokens '': expected a token count like 512 or a range like 128:2048"),
        ("  ", 0.0, "--input-tokens '  ': expected a token count"),
        ("abc", 0.0, "--input-tokens 'abc': 'abc' is not a whole number of tokens"),
        ("1.5", 0.0, "--input-tokens '1.5': '1.5' is not a whole number of tokens"),
        ("-5", 0.0, "--input-tokens '-5': '-5' is not a whole number of tokens"),
        ("128:", 0.0, "--input-tokens '128:': '' is not a whole number of tokens"),
        (":64", 0.0, "--input-tokens ':64': '' is not a whole number of tokens"),
        ("1:2:3", 0.0, "--input-tokens '1:2:3': expected N or LOW:HIGH, with one ':' at most"),
        ("0", 0.0, "--input-tokens '0': a token count must be at least 1"),
        ("0:10", 0.0, "--input-tokens '0:10': a token count must be at least 1"),
        ("²", 0.0, "--input-tokens '²': '²' is not a whole number of tokens"),
        ("512", -1.0, "--input-tokens-stdev -1.0: expected a number of tokens >= 0"),
        ("512", float("nan"), "--input-tokens-stdev nan: expected a number of tokens >= 0"),
        ("512", float("inf"), "--input-tokens-stdev inf: expected a number of tokens >= 0"),
        (
            "128:256",
            10.0,
            "--input-tokens-stdev 10 applies to a fixed --input-tokens, not the range '128:256'",
        ),
    ],
)
def test_length_errors_name_the_option(text: str, stdev: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_length("--input-tokens", text, stdev)
    assert str(info.value).startswith(message)


def test_length_dist_refuses_impossible_values() -> None:
    for low, high, stdev in [(0, 5, 0.0), (5, 4, 0.0), (5, 6, 1.0), (5, 5, -1.0), (5, 5, float("inf"))]:
        with pytest.raises(ValueError):
            LengthDist(low, high, stdev)
