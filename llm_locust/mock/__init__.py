"""The built-in OpenAI-compatible mock engine (``llm-locust mock``)."""
