"""The compiled hot paths (llm_locust/_native/_speedups.c: stream body reader, HDR recording). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the package installs and reads streams with the
pure-Python reactor and histograms (a lower client capacity; README, "Scale out").
"""

import sys

from setuptools import Extension, setup

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

setup(ext_modules=ext_modules)
