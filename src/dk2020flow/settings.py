"""Settings from `DK2020FLOW_*` environment variables (and an optional .env file)."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from dk2020flow.errors import Dk2020flowError


class SettingsError(Dk2020flowError):
    """A ``DK2020FLOW_*`` variable has a value the settings refuse."""


class Settings(BaseSettings):
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


def load_settings() -> Settings:
    """The settings from the environment; a bad value is one ``SettingsError`` naming the
    variable (never a pydantic traceback, never the value itself: it may be a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"DK2020FLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(
            f"invalid settings ({problems}); fix the variable (docs/operations.md, 'Settings')"
        ) from None
