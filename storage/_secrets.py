"""Database passwords: out of files, command lines, stored configs and messages.

A storage URL can keep its password out of every file in two ways. Leave it out
(``postgresql://user@host/db``) and libpq finds it in ``PGPASSWORD`` or ``~/.pgpass``;
or name an environment variable in the URL, ``postgresql://user:${SNN_DB_PASSWORD}@host/db``.
``${NAME}`` may stand in any part of the URL (user, password, host, database, query
values); it is replaced after the URL is parsed, so the value needs no URL escaping.
Every URL the project prints or stores goes through :func:`shown_url`, which hides the
password, however it was given.
"""

from __future__ import annotations

import os
import re

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

#: ``${NAME}``: an environment variable named in a storage URL
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: ``scheme://user:password@``, up to the last ``@``: a password may hold an unescaped ``@``
_USERINFO = re.compile(r"(://[^:/@\s]*:).*@")


def shown_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in text that is not a URL, whatever stands between
    ``user:`` and the last ``@``)."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        return _USERINFO.sub(r"\1***@", url)
    if "@" in (parsed.host or ""):  # an unescaped "@" in the password: the URL parser cut it there
        return _USERINFO.sub(r"\1***@", url)
    return parsed.render_as_string(hide_password=True)


class MissingVariable(LookupError):
    """A storage URL names an environment variable that is not set."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(name)


def expand(url: URL) -> URL:
    """``url`` with every ``${NAME}`` in its parts replaced by the environment variable ``NAME``;
    :class:`MissingVariable` when one is not set."""

    def sub(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: _lookup(m.group(1)), text)

    def part(text: str | None) -> str | None:
        return None if text is None else sub(text)

    query = {k: (tuple(sub(x) for x in v) if isinstance(v, tuple) else sub(v)) for k, v in url.query.items()}
    return url.set(username=part(url.username), password=part(url.password), host=part(url.host),
                   database=part(url.database), query=query)


def _lookup(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise MissingVariable(name)
    return value
