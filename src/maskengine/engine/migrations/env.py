"""Alembic environment for a maskengine project store.

The store runs migrations itself (`maskengine.engine.store.migrate`) and hands over an open
connection in `config.attributes["connection"]`; with only a URL (`alembic -x url=...`,
for developers writing a new revision) a connection is made from it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from maskengine.engine.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database URL: alembic -x url=sqlite:///project/store.db ...")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
