"""Gateway settings, read from ``CALLSTREAM_GATEWAY_*`` environment variables.

Kafka itself (bootstrap servers, passthrough properties, topic names) comes from the shared
:class:`callstream.settings.Settings`; this class holds only what is the gateway's own.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from callstream.settings import CallstreamBaseSettings

AuthMode = Literal["none", "basic", "apikey", "hmac"]


class GatewaySettings(CallstreamBaseSettings):
    """The gateway's HTTP, authentication and producer settings."""

    model_config = SettingsConfigDict(env_prefix="CALLSTREAM_GATEWAY_")

    host: str = Field("0.0.0.0", description="Address the callbacks server binds.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the callbacks server.")
    path: str = Field(
        "/callbacks", description="POST path for callbacks; /<path>/<anything> is accepted too."
    )

    auth: AuthMode = Field("none", description="none, basic, apikey or hmac.")
    basic_username: str = Field("", description="HTTP Basic user name (auth=basic).")
    basic_password: SecretStr = Field(SecretStr(""), description="HTTP Basic password.")
    apikey_header: str = Field("x-api-key", description="Header holding the API key.")
    apikey: SecretStr = Field(SecretStr(""), description="Expected API key (auth=apikey).")
    hmac_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 secret of the x-hub-signature (auth=hmac)."
    )
    hmac_header: str = Field("x-hub-signature", description="Header holding the signature.")

    max_body_bytes: int = Field(64 * 1024, ge=1, description="Larger bodies are answered 413.")
    write_timeout_seconds: float = Field(
        5.0, gt=0, description="Answer 503 when Kafka has not acknowledged within this time."
    )
    shutdown_timeout_seconds: float = Field(
        15.0, gt=0, description="On SIGTERM, how long in-flight requests and the flush may take."
    )
    readiness_probe_seconds: float = Field(
        5.0, gt=0, description="Interval of the metadata probe behind /readyz."
    )

    linger_ms: int = Field(2, ge=0, description="Producer linger.ms (batching delay).")
    batch_num_messages: int = Field(10000, ge=1, description="Producer batch.num.messages.")
    compression_type: str = Field("lz4", description="Producer compression.type.")

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with /")
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _auth_is_complete(self) -> Self:
        missing: list[str] = []
        if self.auth == "basic":
            if not self.basic_username:
                missing.append("CALLSTREAM_GATEWAY_BASIC_USERNAME")
            if not self.basic_password.get_secret_value():
                missing.append("CALLSTREAM_GATEWAY_BASIC_PASSWORD")
        elif self.auth == "apikey" and not self.apikey.get_secret_value():
            missing.append("CALLSTREAM_GATEWAY_APIKEY")
        elif self.auth == "hmac" and not self.hmac_secret.get_secret_value():
            missing.append("CALLSTREAM_GATEWAY_HMAC_SECRET")
        if missing:
            raise ValueError(f"auth={self.auth} needs {', '.join(missing)}")
        return self
