"""API flavors: how a request is built and how one streamed event decodes, one module per API."""
