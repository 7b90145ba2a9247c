"""Storage URLs: passwords hidden wherever a URL is shown, ``${NAME}`` from the environment, no in-memory SQLite."""

from __future__ import annotations

import pytest

import storage
from objectives import ConfigError
from storage import _engines, shown_url

SECRET = "pa:ss@w/rd"


@pytest.mark.parametrize("url, shown", [
    ("postgresql://user:hunter2@db.example:5432/studies", "postgresql://user:***@db.example:5432/studies"),
    ("postgresql+psycopg2://user:pa%3Ass%40w%2Frd@h/db?sslmode=require", "postgresql+psycopg2://user:***@h/db?sslmode=require"),
    ("postgresql://user:pass@word@h/db", "postgresql://user:***@h/db"),  # an unescaped "@" in the password
    ("postgresql://user:${DB_PASSWORD}@h/db", "postgresql://user:***@h/db"),
    ("postgresql://user@h/db", "postgresql://user@h/db"),
    ("sqlite:///runs/study.db", "sqlite:///runs/study.db"),
    ("not a url://user:hunter2@x", "not a url://user:***@x"),
])
def test_a_shown_url_hides_the_password_however_it_is_written(url, shown):
    assert shown_url(url) == shown


def test_a_variable_named_in_the_url_gives_the_password_unescaped(monkeypatch):
    monkeypatch.setenv("SNN_TEST_PASSWORD", SECRET)
    target = _engines.parse("postgresql://user:${SNN_TEST_PASSWORD}@h:5432/db", create=False)
    assert target.url.password == SECRET and target.url.host == "h" and target.url.database == "db"
    assert SECRET not in target.shown


def test_a_variable_that_is_not_set_is_one_line_naming_it(monkeypatch):
    monkeypatch.delenv("SNN_TEST_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="SNN_TEST_PASSWORD, which is not set"):
        storage.open_storage("postgresql://user:${SNN_TEST_PASSWORD}@127.0.0.1:1/db")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true",
                                 "sqlite:///file:x?mode=memory&uri=true"])
def test_an_in_memory_sqlite_database_is_refused(url, tmp_path, monkeypatch):
    """Defect 13: results in memory are gone when the run ends, and each worker would have a database of its own."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="in-memory") as raised:
        storage.open_storage(url)
    assert raised.value.field == "study.storage"
    assert list(tmp_path.iterdir()) == []
