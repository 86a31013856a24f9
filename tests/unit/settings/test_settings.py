"""Settings: environment variables over the TOML file; secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dk2020flow.settings import ConfigError, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DK2020FLOW_CONFIG", "DK2020FLOW_BATCH_SIZE", "DK2020FLOW_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_without_a_file() -> None:
    assert Settings().batch_size == 200


def test_the_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "dk2020flow.toml").write_text("batch_size = 50\nsweep_seconds = 5.0\n")
    settings = Settings()
    assert (settings.batch_size, settings.sweep_seconds) == (50, 5.0)


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("batch_size = 50\n")
    monkeypatch.setenv("DK2020FLOW_CONFIG", str(config))
    monkeypatch.setenv("DK2020FLOW_BATCH_SIZE", "7")
    assert Settings().batch_size == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('smtp_password = "s3cret"\n', "DK2020FLOW_SMTP_PASSWORD"),
        ('database_url = "postgresql+psycopg://u:s3cret@db/x"\n', "DK2020FLOW_DATABASE_URL"),
        ("batch_size = [\n", "cannot read"),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "dk2020flow.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as refused:
        Settings()
    assert "s3cret" not in str(refused.value)
