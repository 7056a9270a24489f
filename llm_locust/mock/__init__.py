"""The built-in mock engine (``llm-locust mock``): every API flavor llm-locust speaks, no GPU."""
