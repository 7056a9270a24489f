"""The wire: bytes from the socket to timestamped events. Knows no JSON and no API: SSE framing,
the process's stream reader (reactor), kernel receive times, read batching, content codings, TLS."""
