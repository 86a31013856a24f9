"""Settings: `DK2020FLOW_*` environment variables over an optional TOML file.

The file is ``$DK2020FLOW_CONFIG`` or ``dk2020flow.toml`` in the working
directory; its keys are the settings' names (``database_url = "…"``,
``batch_size = 500``, ``smtp_host = "…"``). Environment variables win over the
file. Secrets (the SMTP password, a database password) belong in the
environment only: a file that holds one is refused.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dk2020flow.errors import Dk2020flowError

CONFIG_ENV = "DK2020FLOW_CONFIG"
CONFIG_FILE = "dk2020flow.toml"
SECRET_KEYS = frozenset({"smtp_password", "oidc_client_secret"})


class SettingsError(Dk2020flowError):
    """A ``DK2020FLOW_*`` variable (or configuration key) has a value the settings refuse."""


class ConfigError(Dk2020flowError):
    """The configuration file cannot be used; the message names the file and the key."""

    exit_code = 2


def config_path() -> Path | None:
    """The configuration file in force, if any."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} names {path}, which is not a file")
        return path
    local = Path(CONFIG_FILE)
    return local if local.is_file() else None


@lru_cache(maxsize=8)
def _read(path: Path, mtime: float) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from None
    secrets = sorted(SECRET_KEYS & set(data))
    if secrets:
        raise ConfigError(
            f"{path}: {', '.join(secrets)} must not be in a file; "
            f"set DK2020FLOW_{secrets[0].upper()} in the environment instead"
        )
    if urlsplit(str(data.get("database_url", ""))).password:
        raise ConfigError(
            f"{path}: database_url holds a password; set DK2020FLOW_DATABASE_URL in the "
            "environment instead (or use a .pgpass file)"
        )
    return data


def config_values() -> dict[str, Any]:
    """The configuration file's values (empty without a file)."""
    path = config_path()
    return {} if path is None else _read(path.resolve(), path.stat().st_mtime)


class ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the fields of a settings class from the TOML configuration file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = config_values()
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = config_values()
        return {name: values[name] for name in self.settings_cls.model_fields if name in values}


class FileAndEnvSettings(BaseSettings):
    """Base for settings read from the environment over the configuration file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, ConfigFileSource(settings_cls)


class Settings(FileAndEnvSettings):
    """Engine and daemon settings; SMTP settings live in ``notify.transports.MailSettings``."""

    model_config = SettingsConfigDict(env_prefix="DK2020FLOW_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite:///dk2020flow.db",
        description="SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB",
    )
    batch_size: int = Field(default=200, ge=1, le=10_000, description="Timers claimed per tick.")
    burst_cap: int = Field(
        default=500, ge=1, description="Firings of one timer name fired per tick after downtime."
    )
    sweep_seconds: float = Field(
        default=60.0, gt=0, description="Safety sweep interval even when nothing is due."
    )
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    mail_batch_size: int = Field(default=100, ge=1, le=10_000)
    mail_max_attempts: int = Field(default=8, ge=1, le=100)
    mail_lease_seconds: float = Field(default=300.0, gt=0)
    mail_backoff_seconds: float = Field(default=60.0, gt=0)
    mail_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    daemon_stale_seconds: float = Field(
        default=120.0, gt=0, description="A daemon silent this long is shown as dead."
    )
    timezone: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The IANA zone commands and pages show times in and read a local "
        "--now in; none: the one programme's `timezone:`, else UTC (docs/time.md).",
    )
    mail_sender: str | None = Field(
        default=None,
        min_length=3,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Overrides the From address of every workflow's `sender:`.",
    )
    mail_sender_name: str | None = Field(
        default=None, max_length=200, description="Overrides the From name of every workflow."
    )
    # Uploaded documents (docs/documents.md). S3 credentials come from boto3's own chain
    # (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, a profile, a role), never
    # from these settings.
    document_storage: Literal["database", "directory", "s3"] = Field(
        default="database", description="Where uploaded documents' bytes are kept."
    )
    document_directory: Path | None = Field(
        default=None, description="The folder of the directory storage (it must exist)."
    )
    document_s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    document_s3_prefix: str = Field(default="documents/", max_length=200)
    document_s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible store's URL (MinIO, Ceph …); none: AWS."
    )
    document_s3_region: str | None = Field(default=None, max_length=64)
    document_s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # Links in mail (docs/portal.md "Links in mail"): without public_url, mail carries none.
    public_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="The public address of `dk2020flow serve` (https://…), for links in mail.",
    )
    case_link_days: int = Field(
        default=14, ge=1, le=90, description="Days a case link in a mail signs its person in."
    )
    # Single sign-on by OpenID Connect (docs/portal.md); the secret only from the environment.
    oidc_issuer: str | None = Field(
        default=None, max_length=500, description="The provider's issuer URL (https)."
    )
    oidc_client_id: str | None = Field(default=None, min_length=1, max_length=500)
    oidc_client_secret: SecretStr | None = Field(default=None, max_length=2000)
    oidc_scopes: str = Field(default="openid email profile", max_length=500)
    oidc_name: str = Field(
        default="single sign-on", min_length=1, max_length=80, description="The button's name."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "not a timezone of the IANA database; write a name such as UTC, "
                "Europe/Brussels or America/New_York"
            ) from None
        return value

    def sender_override(self) -> tuple[str | None, str | None]:
        """(name, address) set to replace the workflow's ``sender:``; None where not set."""
        return self.mail_sender_name, self.mail_sender


def load_settings() -> Settings:
    """The settings from the environment and the file; a bad value is one ``SettingsError``
    naming the variable (never a pydantic traceback, never the value itself: it may be a
    secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"DK2020FLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(
            f"invalid settings ({problems}); fix the variable or the key in the configuration "
            "file (docs/operations.md, 'Settings')"
        ) from None
