"""The REST API (``/api/v1/…``): JSON over the same service as the console and the CLI.

- ``app``: ``create_api``, the API's own FastAPI application (its OpenAPI document holds
  the API alone), which ``web.app`` mounts at ``/api``;
- ``auth``: bearer tokens (``Service.tokens``) and the role each route needs;
- ``ratelimit``: requests per token, a sliding window per worker process;
- ``problems``: every error as an RFC 9457 problem (``application/problem+json``);
- ``schemas``: the bodies (pydantic), so the document describes them exactly;
- ``pagination``: opaque keyset cursors; ``changes``: If-Match and Idempotency-Key;
- ``reads``, ``bodies``: the queries, and their records as bodies;
- ``routes_programme``, ``routes_cases``, ``routes_changes``, ``routes_operations``.

docs/api.md is the user's guide.
"""
