"""A minimal Confluent-compatible schema registry client: register a schema, resolve an id.

Two endpoints of the registry's REST API are all callstream needs (``POST
/subjects/{subject}/versions`` and ``GET /schemas/ids/{id}``), so this uses the standard library
instead of confluent-kafka's registry extra, which would pull httpx, authlib, attrs and cachetools
into every service for two cached, off-hot-path calls. Results are cached for the process.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import fastavro

from callstream.exceptions import ConfigError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(ConfigError):
    """The schema registry refused a request or could not be reached."""


class SchemaRegistry:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._by_id: dict[int, Any] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310  (the URL is operator configuration)
            self.url + path, data=data, method=method, headers={"Content-Type": _CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise RegistryError(f"schema registry {method} {path}: {exc.code} {detail}") from exc
        except (OSError, ValueError) as exc:
            raise RegistryError(f"schema registry {method} {path}: {exc}") from exc

    def register(self, subject: str, schema_json: str) -> int:
        """The id of ``schema_json`` under ``subject`` (registered when new). Cached."""
        key = (subject, schema_json)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        quoted = urllib.parse.quote(subject, safe="")
        answer = self._call("POST", f"/subjects/{quoted}/versions", {"schema": schema_json})
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[key] = schema_id
        return schema_id

    def schema_for_id(self, schema_id: int) -> Any:
        with self._lock:
            if schema_id in self._by_id:
                return self._by_id[schema_id]
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise RegistryError(f"schema id {schema_id} is not an Avro schema")
        parsed = fastavro.parse_schema(json.loads(answer["schema"]))
        with self._lock:
            self._by_id[schema_id] = parsed
        return parsed
