"""The compiled hot paths (llm_locust/_native/_speedups.c: stream body reader, HDR recording) and the
package's files. Everything else is in pyproject.toml.

The extension is optional: without a C compiler the package installs and reads streams with the
pure-Python reactor and histograms (a lower client capacity; README, "Scale out").

The repository's ``locustfiles/`` ships inside the package as ``llm_locust/locustfiles/`` (data, not
a package: no ``__init__.py``), so ``llm-locust demo`` runs from an installed wheel; tests/ and bench/
stay out.
"""

import sys

from setuptools import Extension, find_packages, setup

PACKAGE_DATA = {
    "llm_locust": ["py.typed"],
    "llm_locust.data": ["*.txt", "*.json", "*.jsonl", "*.tiktoken"],
    "llm_locust.locustfiles": ["*.py"],
}

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(
        Extension(
            "llm_locust._native._speedups",
            [
                "llm_locust/_native/_speedups.c",
                "llm_locust/_native/_events.c",
                "llm_locust/_native/_chunked.c",
                "llm_locust/_native/_plain_chunk.c",
                "llm_locust/_native/_json_scan.c",
                "llm_locust/_native/_hdr.c",
            ],
            depends=["llm_locust/_native/_speedups.h", "llm_locust/_native/_json_scan.h"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    )

setup(
    packages=sorted({*find_packages(include=["llm_locust", "llm_locust.*"]), *PACKAGE_DATA}),
    package_dir={"llm_locust.locustfiles": "locustfiles"},
    package_data=PACKAGE_DATA,
    # compiled into the .so; the sdist keeps them
    exclude_package_data={"llm_locust._native": ["*.c", "*.h"]},
    ext_modules=ext_modules,
)
