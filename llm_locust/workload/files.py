"""Readers of dataset files: JSON Lines of OpenAI messages or prompts, and ShareGPT.

Both take the file's bytes (read once by :func:`llm_locust.workload.dataset.load_dataset`, which
also hashes them) and raise :class:`ConfigError` naming the file and the line or entry at fault.

``--output-tokens``, when given, overrides the lengths a file carries (``max_tokens`` of a JSONL
line, the reference answers of ShareGPT): an option on the command line is the user's latest word.

ShareGPT filter, as ``vllm bench serve`` applies it, on the FIRST human message and the answer
that follows it: both at least ``min_tokens``, the prompt at most ``max_prompt_tokens``, prompt plus
answer at most ``max_total_tokens`` (with ``--output-tokens``, the drawn length stands in for the
answer and its minimum is not checked). Conversations of fewer than two messages, or whose first
message is not a human's or second not an answer, are dropped too; vLLM takes the first two
messages whatever their roles, which would send an assistant's text as the prompt. Tokens are
counted with the test's tokenizer, without special tokens; vLLM counts with the model's tokenizer
including its BOS token, so a prompt at the 1024 limit can land on the other side of it.

A multi-turn ShareGPT conversation is kept whole: each human message is a turn whose
``output_tokens`` is the length of the answer right after it (None when none follows). System
messages after the first are left out: a chat request carries one system message, at the start.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from llm_locust.errors import ConfigError
from llm_locust.workload.dataset import Conversation, DatasetSpec, Turn, output_rng
from llm_locust.workload.tokenizer import Tokenizer

_JSONL_ROLES = ("system", "user", "assistant")
_HUMAN = frozenset({"human", "user"})
_ANSWER = frozenset({"gpt", "assistant", "chatgpt", "bing", "bard", "model"})
_SHAREGPT_ROLES = _HUMAN | _ANSWER | {"system"}
_MESSAGES_SHAPE = '"messages" must be a list of {"role", "content"} objects'
_CONVERSATIONS_SHAPE = '"conversations" must be a list of {"from", "value"} objects'


def read_jsonl(spec: DatasetSpec, data: bytes) -> list[Conversation]:
    """One conversation per non-blank line: ``{"messages": [...]}`` or ``{"prompt": "..."}``, with
    optional ``max_tokens`` (the output length of every turn) and ``id`` (default: the line number).
    Assistant messages are skipped: the server's own answers take their place in the history."""
    text = _utf8(spec, data)
    rng = output_rng(spec)
    conversations = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{spec.option} line {number}"
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise ConfigError(f'{where}: expected a JSON object with "messages" or "prompt"')
        system, users = _jsonl_messages(where, entry)
        max_tokens = _positive_int(where, entry, "max_tokens")
        ident = _ident(where, entry, default=str(number))
        turns = tuple(Turn(u, _output(spec, rng, max_tokens)) for u in users)
        conversations.append(Conversation(ident, turns, system))
    return conversations


def _jsonl_messages(where: str, entry: dict[str, Any]) -> tuple[str, list[str]]:
    if ("messages" in entry) == ("prompt" in entry):
        raise ConfigError(f'{where}: give exactly one of "messages" and "prompt"')
    if "prompt" in entry:
        prompt = entry["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise ConfigError(f'{where}: "prompt" must be a non-empty string')
        return "", [prompt]
    messages = entry["messages"]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in messages
    ):
        raise ConfigError(f"{where}: {_MESSAGES_SHAPE}")
    system: str | None = None
    users: list[str] = []
    for i, message in enumerate(messages, start=1):
        role = message["role"]
        if role not in _JSONL_ROLES:
            raise ConfigError(f"{where}: message {i} has role {role!r}; expected one of {list(_JSONL_ROLES)}")
        content = _content(f"{where}: message {i}", message["content"])
        if role == "system":
            if system is not None or users:
                raise ConfigError(f"{where}: message {i}: one system message, before the first user message")
            system = content
        elif role == "user":
            users.append(content)
    if not users:
        raise ConfigError(f"{where}: no user message")
    return system or "", users


def _content(where: str, content: object) -> str:
    """A message's text: a string, or OpenAI's list of text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(p["text"] for p in content)
    raise ConfigError(f'{where}: "content" must be a string or a list of {{"type": "text", "text"}} parts')


def read_sharegpt(spec: DatasetSpec, data: bytes, tokenizer: Tokenizer) -> tuple[list[Conversation], int]:
    """``[{"id", "conversations": [{"from": "human"|"gpt", "value"}, ...]}, ...]`` -> (the
    conversations the filter keeps, in file order; how many it dropped)."""
    try:
        entries = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{spec.option}: not valid JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{spec.option}: expected a JSON list of conversations, got {_kind(entries)}")
    rng = output_rng(spec)
    kept: list[Conversation] = []
    dropped = 0
    for index, entry in enumerate(entries):
        where = f"{spec.option} entry {index}"
        messages = _sharegpt_messages(where, entry)
        ident = _ident(where, entry, default=str(index))
        turns = _sharegpt_turns(spec, messages, tokenizer, rng)
        if turns is None:
            dropped += 1
        else:
            kept.append(Conversation(ident, turns))
    return kept, dropped


def _sharegpt_messages(where: str, entry: object) -> list[tuple[str, str]]:
    if not isinstance(entry, dict):
        raise ConfigError(f'{where}: expected an object with "conversations", got {_kind(entry)}')
    messages = entry.get("conversations")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("from"), str) and isinstance(m.get("value"), str)
        for m in messages
    ):
        raise ConfigError(f"{where}: {_CONVERSATIONS_SHAPE}")
    for i, m in enumerate(messages):
        if m["from"] not in _SHAREGPT_ROLES:
            raise ConfigError(
                f"{where}: message {i} is from {m['from']!r}; expected one of {sorted(_SHAREGPT_ROLES)}"
            )
    return [(m["from"], m["value"]) for m in messages]


def _sharegpt_turns(
    spec: DatasetSpec, messages: list[tuple[str, str]], tokenizer: Tokenizer, rng: random.Random
) -> tuple[Turn, ...] | None:
    """The turns of one conversation, or None when the filter drops it."""
    if len(messages) < 2 or messages[0][0] not in _HUMAN or messages[1][0] not in _ANSWER:
        return None
    prompt_tokens = tokenizer.count(messages[0][1])
    if spec.output_tokens is not None:
        first_output = spec.output_tokens.draw(rng)
        short_output = False
    else:
        first_output = tokenizer.count(messages[1][1])
        short_output = first_output < spec.min_tokens
    if (
        prompt_tokens < spec.min_tokens
        or short_output
        or prompt_tokens > spec.max_prompt_tokens
        or prompt_tokens + first_output > spec.max_total_tokens
    ):
        return None
    turns = [Turn(messages[0][1], first_output)]
    for i in range(2, len(messages)):
        role, value = messages[i]
        if role not in _HUMAN:
            continue  # answers are counted with the turn before; later system messages are left out
        following = messages[i + 1] if i + 1 < len(messages) else None
        if spec.output_tokens is not None:
            output: int | None = spec.output_tokens.draw(rng)
        elif following is not None and following[0] in _ANSWER:
            output = tokenizer.count(following[1])
        else:
            output = None
        turns.append(Turn(value, output))
    return tuple(turns)


def _output(spec: DatasetSpec, rng: random.Random, from_file: int | None) -> int | None:
    return spec.output_tokens.draw(rng) if spec.output_tokens is not None else from_file


def _positive_int(where: str, entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f'{where}: "{key}" must be a whole number of tokens >= 1, not {value!r}')
    return value


def _ident(where: str, entry: dict[str, Any], default: str) -> str:
    value = entry.get("id")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f'{where}: "id" must be a string or a number, not {value!r}')
    return str(value)


def _utf8(spec: DatasetSpec, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{spec.option}: not UTF-8 text (byte {exc.start})") from None


def _kind(value: object) -> str:
    kinds: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return kinds.get(type(value), type(value).__name__)
