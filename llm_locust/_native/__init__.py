"""The optional compiled reader (C): chunked framing, SSE lines and events, the plain-chunk scan,
HDR recording; :mod:`llm_locust._native.speedups` loads it."""
