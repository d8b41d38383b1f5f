"""The order-system connector: order numbers found in customers' messages, the store's
`orders` table through its migration (SQLite and PostgreSQL), lookups found and not
found, importing a file all or nothing, the demo shop's orders, the settings factory
and the `chatbot orders` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from chatbot.bootstrap import DEMO_DATA, DEMO_ORDERS, load_demo_data, load_demo_orders
from chatbot.cli import main
from chatbot.config import ensure_home
from chatbot.errors import ConfigError, InputError, OrderSystemError
from chatbot.orders import (
    DEFAULT_NUMBER_PATTERN,
    Order,
    OrderConnector,
    OrderStatus,
    find_order_numbers,
    normalise_order_number,
    open_connector,
)
from chatbot.orders.importer import import_orders_file, read_orders_file
from chatbot.orders.repository import count_orders, get_order, upsert_orders
from chatbot.orders.settings import OrderSettings
from chatbot.orders.sql import SqlOrderConnector
from chatbot.settings import load_settings
from chatbot.store.database import Database, create_db_engine
from chatbot.store.migrations import alembic_config, upgrade
from chatbot.store.orders_schema import OrderRow

PLACED = datetime(2026, 12, 3, 11, 20, tzinfo=UTC)


def _order(number: str = "NW-113560", **changes) -> Order:
    values = {
        "number": number,
        "status": OrderStatus.DISPATCHED,
        "placed_at": PLACED,
        "dispatched_at": PLACED + timedelta(hours=21),
        "items": ("toaster", "electric kettle"),
        "total": "77.98 EUR",
        "tracking_url": f"https://track.northwindgoods.example/{number}",
    }
    values.update(changes)
    return Order(**values)


def _line(number: str = "NW-100001", **changes) -> str:
    record = {
        "number": number,
        "status": "delivered",
        "placed_at": "2026-11-20T09:14:00Z",
        "dispatched_at": "2026-11-21T08:00:00Z",
        "delivered_at": "2026-11-23T12:30:00+01:00",
        "items": ["wool throw blanket"],
        "total": "59.00 EUR",
        "tracking_url": None,
    }
    record.update(changes)
    return json.dumps(record)


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- order numbers in customers' messages --------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "NW-123456",
        "nw-123456",
        "NW123456",
        "nw123456",
        "NW 123456",
        "my order nw - 123456 hasn't arrived",
        "Where is order NW–123456?",  # an en dash from autocorrect
        "(NW-123456)",
        "Order number: NW-123456.",
        "it's NW-123456, and yes NW 123456 is the one",  # the same order twice
    ],
)
def test_an_order_number_is_found_in_a_customer_spelling(message):
    assert normalise_order_number(message, DEFAULT_NUMBER_PATTERN) == "NW-123456"


@pytest.mark.parametrize(
    "message",
    [
        "where is my order?",
        "order 123456",  # no prefix: could be anything
        "123456",
        "NW-12345",  # too short
        "NW-1234567",  # too long
        "XNW-123456",  # part of a longer identifier
        "NW-123456-2",
        "NW123456A",
        "NW-123 456",
        "new 123456",
        "NW-123456 and NW-654321",  # two different orders: ask which one
    ],
)
def test_no_order_number_is_guessed(message):
    assert normalise_order_number(message, DEFAULT_NUMBER_PATTERN) is None


def test_every_distinct_number_is_listed_in_order():
    assert find_order_numbers("nw 654321 came, NW-123456 did not; NW654321 again") == [
        "NW-654321",
        "NW-123456",
    ]


def test_a_company_pattern_of_its_own():
    pattern = r"ORD-[A-Z]{2}\d{4}"
    assert normalise_order_number("is ord ab1234 shipped?", pattern) == "ORD-AB1234"
    assert normalise_order_number("ORD-AB12345", pattern) is None
    assert normalise_order_number("my number is 40012345", r"\d{8}") == "40012345"
    assert normalise_order_number("call 40012345 or 40012346", r"\d{8}") is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("NW-(\\d{6}", "not a valid regex"), ("\\d*", "matches an empty text")],
)
def test_a_bad_number_pattern_is_named(pattern, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(orders={"number_pattern": pattern})
    assert "orders.number_pattern" in str(info.value)


# -- the record -----------------------------------------------------------------------


def test_order_times_are_kept_in_utc_and_checked():
    paris = timezone(timedelta(hours=1))
    order = _order(placed_at=datetime(2026, 12, 3, 12, 20, tzinfo=paris))
    assert order.placed_at == PLACED and order.placed_at.tzinfo is UTC
    assert _order(status="delivered").status is OrderStatus.DELIVERED
    with pytest.raises(InputError, match="no time zone"):
        _order(placed_at=datetime(2026, 12, 3, 11, 20))
    with pytest.raises(InputError, match="dispatched_at is before placed_at"):
        _order(dispatched_at=PLACED - timedelta(days=1))
    with pytest.raises(InputError, match="status processing with a dispatch"):
        _order(status=OrderStatus.PROCESSING)
    with pytest.raises(InputError, match="unknown status 'shipped'"):
        _order(status="shipped")


# -- the table and its migration (SQLite and PostgreSQL) ------------------------------


def test_the_orders_migration_goes_up_down_and_up_again(database_url):
    from alembic import command

    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        assert "orders" in inspect(engine).get_table_names()
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0006_dialogue_outcomes")
        inspect(engine).clear_cache()
        assert "orders" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert upgrade(database_url) == ("0006_dialogue_outcomes", "0010_private_answers")


def test_lookup_finds_the_order_and_nothing_else(migrated_database):
    with migrated_database.session() as session:
        summary = upsert_orders(
            session=session,
            orders=[
                _order(),
                _order("NW-104217", status=OrderStatus.PROCESSING, dispatched_at=None),
            ],
        )
    assert (summary.added, summary.updated) == (2, 0)
    connector = SqlOrderConnector(migrated_database)
    assert isinstance(connector, OrderConnector) and connector.name == "sql"
    found = connector.lookup("NW-113560")
    assert found == _order()  # every field back as it went in, times aware and in UTC
    assert found.placed_at.tzinfo is UTC and found.delivered_at is None
    assert connector.lookup("NW-104217").status is OrderStatus.PROCESSING
    assert connector.lookup("NW-999999") is None
    assert connector.lookup("nw-113560") is None  # numbers are canonical: normalise first


def test_upsert_rewrites_an_order_already_stored(migrated_database):
    with migrated_database.session() as session:
        upsert_orders(session=session, orders=[_order()])
    delivered = _order(status=OrderStatus.DELIVERED, delivered_at=PLACED + timedelta(days=2))
    with migrated_database.session() as session:
        summary = upsert_orders(session=session, orders=[delivered, _order("NW-100002")])
    assert (summary.added, summary.updated, summary.total) == (1, 1, 2)
    with migrated_database.session() as session:
        assert get_order(session=session, number="NW-113560") == delivered
        assert count_orders(session=session) == 2


def test_the_database_refuses_an_unknown_status(migrated_database):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), migrated_database.session() as session:
        session.execute(
            text(
                "INSERT INTO orders (number, status, placed_at, items, updated_at) "
                "VALUES ('NW-1', 'lost', :t, '[]', :t)"
            ),
            {"t": PLACED},
        )


def test_a_row_written_around_the_import_is_an_order_system_error(sqlite_database):
    with sqlite_database.session() as session:
        upsert_orders(session=session, orders=[_order()])
        session.execute(OrderRow.__table__.update().values(status="processing"))
    with pytest.raises(OrderSystemError, match="NW-113560 in the orders table is unreadable"):
        SqlOrderConnector(sqlite_database).lookup("NW-113560")


def test_an_empty_table_is_no_order_system(sqlite_database):
    with pytest.raises(OrderSystemError, match="orders table is empty.*chatbot orders import"):
        SqlOrderConnector(sqlite_database).lookup("NW-123456")


def test_an_unreachable_store_is_an_order_system_error(tmp_path):
    unmigrated = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(OrderSystemError, match="order lookup failed"):
            SqlOrderConnector(unmigrated).lookup("NW-123456")
    finally:
        unmigrated.dispose()
    down = Database("postgresql+psycopg://bob:secret@127.0.0.1:9/shop")
    try:
        with pytest.raises(OrderSystemError) as info:
            SqlOrderConnector(down).lookup("NW-123456")
        assert "secret" not in str(info.value) and "bob:***" in str(info.value)
    finally:
        down.dispose()


# -- importing a file, all or nothing -------------------------------------------------


def test_a_file_is_read_with_times_in_utc(tmp_path):
    path = _write(tmp_path / "orders.jsonl", _line(), "", _line("NW-100002", status="returned"))
    orders = read_orders_file(path, number_pattern=DEFAULT_NUMBER_PATTERN)
    assert [o.number for o in orders] == ["NW-100001", "NW-100002"]
    assert orders[0].delivered_at == datetime(2026, 11, 23, 11, 30, tzinfo=UTC)
    assert orders[0].to_dict()["delivered_at"] == "2026-11-23T11:30:00Z"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"number": "NW-100003", "status": ', "not valid JSON"),
        ('["NW-100003"]', "expected a JSON object"),
        (
            _line("NW-100003", status="shipped"),
            'unknown status "shipped" (expected one of: processing',
        ),
        (_line("NW-100003", placed_at="20/11/2026"), "bad date for placed_at: '20/11/2026'"),
        (
            _line("NW-100003", placed_at="2026-11-20T09:14:00"),
            "placed_at: '2026-11-20T09:14:00' has no time zone",
        ),
        (
            _line("NW-100003", delivered_at="2026-11-19T09:14:00Z"),
            "delivered_at is before dispatched_at",
        ),
        (_line("NW-100003", placed_at=None), "missing placed_at"),
        (_line("NW-100003", colour="red"), "unknown field 'colour'"),
        (_line("NW-100003", total=59.0), "total must be text with its currency"),
        (_line("NW-100003", items="lamp"), "items must be a list"),
        (_line("NW-100003", tracking_url="ftp://x"), "not an http(s) URL"),
        (_line("order 100003"), "does not match orders.number_pattern"),
        (_line("NW-100001"), "order NW-100001 appears twice (first on line 1)"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_loaded(sqlite_database, tmp_path, bad, reason):
    with sqlite_database.session() as session:
        upsert_orders(session=session, orders=[_order()])
    path = _write(
        tmp_path / "orders.jsonl",
        _line("NW-100001"),
        _line("NW-113560", status="delivered", delivered_at="2026-12-06T10:00:00Z"),
        bad,
        _line("NW-100004"),
    )
    with pytest.raises(InputError) as info:
        import_orders_file(sqlite_database, path, number_pattern=DEFAULT_NUMBER_PATTERN)
    assert str(info.value).startswith(f"{path}:3: ")
    assert reason in str(info.value)
    assert info.value.line == 3
    with sqlite_database.session() as session:  # the file's good lines were not loaded either
        assert count_orders(session=session) == 1
        assert get_order(session=session, number="NW-113560") == _order()


def test_a_missing_or_empty_file_is_named(sqlite_database, tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.jsonl: no such file"):
        import_orders_file(sqlite_database, tmp_path / "nowhere.jsonl")
    with pytest.raises(InputError, match="no orders in the file"):
        import_orders_file(sqlite_database, _write(tmp_path / "empty.jsonl", ""))


def test_an_import_adds_then_updates(sqlite_database, tmp_path):
    path = _write(tmp_path / "orders.jsonl", _line("NW-100001"), _line("NW-100002"))
    first = import_orders_file(sqlite_database, path)
    assert (first.read, first.added, first.updated) == (2, 2, 0)
    _write(path, _line("NW-100002", status="returned"), _line("NW-100003"))
    second = import_orders_file(sqlite_database, path)
    assert (second.read, second.added, second.updated) == (2, 1, 1)
    assert SqlOrderConnector(sqlite_database).lookup("NW-100002").status is OrderStatus.RETURNED


# -- the demo shop's orders -----------------------------------------------------------


def test_the_demo_orders_cover_every_status_and_match_the_pattern():
    orders = read_orders_file(DEMO_ORDERS, number_pattern=DEFAULT_NUMBER_PATTERN)
    assert 10 <= len(orders) <= 20
    assert {o.status for o in orders} == set(OrderStatus)
    history = DEMO_DATA.read_text(encoding="utf-8")
    # No demo order is one that a past conversation talks about: no case is mixed up.
    assert not [o.number for o in orders if o.number in history]


def test_the_demo_load_fills_an_empty_orders_table_once(settings):
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    lines: list[str] = []
    load_demo_data(settings, report=lines.append)
    expected = len(read_orders_file(DEMO_ORDERS))
    assert f"demo orders: loaded {expected} orders into the orders table" in lines
    database = Database(settings.resolved_database_url)
    try:
        connector = open_connector(settings.orders, database)
        order = connector.lookup(normalise_order_number("where is nw 113560?"))
        assert order is not None and order.items == ("toaster",)

        lines.clear()
        load_demo_data(settings, report=lines.append)
        assert any("demo orders: skipped, the orders table already holds" in x for x in lines)
        with database.session() as session:
            assert count_orders(session=session) == expected
            # A store that had the demo before orders existed gets them on the next start.
            session.execute(OrderRow.__table__.delete())
        lines.clear()
        load_demo_data(settings, report=lines.append)
        assert f"demo orders: loaded {expected} orders into the orders table" in lines
    finally:
        database.dispose()


def test_demo_orders_never_go_into_a_company_store(sqlite_database):
    lines: list[str] = []
    assert load_demo_orders(sqlite_database, foreign_history=True, report=lines.append) == 0
    assert lines == ["demo orders: skipped, the store holds a company's own history"]
    with sqlite_database.session() as session:
        assert count_orders(session=session) == 0


# -- the settings and the factory -----------------------------------------------------


class _DictConnector:
    """A company's own connector, as docs/orders.md describes one."""

    name = "dict"

    def __init__(self, orders: dict[str, Order]) -> None:
        self.orders = orders

    def lookup(self, number: str) -> Order | None:
        return self.orders.get(number)


def dict_connector(settings, database):
    return _DictConnector({"NW-113560": _order()})


def not_a_connector(settings, database):
    return object()


def test_the_settings_default_to_the_store_table(settings, monkeypatch):
    assert settings.orders == OrderSettings()
    assert (settings.orders.connector, settings.orders.number_pattern) == ("sql", r"NW-\d{6}")
    monkeypatch.setenv("CHATBOT_ORDERS__CONNECTOR", "none")
    assert load_settings().orders.connector == "none"


def test_the_factory_builds_the_configured_connector(sqlite_database):
    assert open_connector(OrderSettings(connector="none"), sqlite_database) is None
    assert isinstance(open_connector(OrderSettings(), sqlite_database), SqlOrderConnector)
    custom = open_connector(
        OrderSettings(connector="custom", factory="tests.test_orders:dict_connector"),
        sqlite_database,
    )
    assert custom is not None and custom.name == "dict"
    assert custom.lookup("NW-113560") == _order()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"connector": "custom"}, "connector = custom needs factory"),
        ({"connector": "custom", "factory": "no colon"}, "must be 'package.module:function'"),
        ({"connector": "rest"}, "orders.connector: Input should be 'none', 'sql' or 'custom'"),
    ],
)
def test_bad_connector_settings_are_named(values, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(orders=values)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("tests.no_such_module:make", "cannot import tests.no_such_module"),
        ("tests.test_orders:no_such_function", "has no no_such_function"),
        ("tests.test_orders:not_a_connector", "returned object, which has no `name`"),
    ],
)
def test_a_broken_factory_is_a_config_error(sqlite_database, factory, expected):
    with pytest.raises(ConfigError, match=expected):
        open_connector(OrderSettings(connector="custom", factory=factory), sqlite_database)


# -- the command line -----------------------------------------------------------------


def _cli(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def cli_env(tmp_path):
    env = {"CHATBOT_HOME": str(tmp_path / "home")}
    assert _cli(env, "db", "upgrade").exit_code == 0
    return env


def test_cli_imports_and_shows_orders(cli_env, tmp_path):
    assert "  orders " in _cli(cli_env, "--help").output
    path = _write(tmp_path / "orders.jsonl", _line("NW-100001"), _line("NW-100002"))
    result = _cli(cli_env, "orders", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{path}: 2 orders, 2 added, 0 updated"
    again = json.loads(_cli(cli_env, "orders", "import", str(path), "--json").stdout)
    assert (again["added"], again["updated"], again["connector"]) == (0, 2, "sql")

    shown = _cli(cli_env, "orders", "show", "nw 100001")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[:2] == [
        "NW-100001  delivered",
        "  placed      2026-11-20 09:14 UTC",
    ]
    assert "  delivered   2026-11-23 11:30 UTC" in shown.output
    payload = json.loads(_cli(cli_env, "orders", "show", "NW-100002", "--json").stdout)
    assert payload["found"] is True and payload["status"] == "delivered"
    assert payload["items"] == ["wool throw blanket"] and payload["connector"] == "sql"

    missing = CliRunner().invoke(main, ["orders", "show", "NW-999999"], env=cli_env)
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: no order NW-999999 in the order system (sql)"


def test_cli_bad_file_is_one_line_and_loads_nothing(cli_env, tmp_path):
    path = _write(
        tmp_path / "orders.jsonl", _line("NW-100001"), _line("NW-100002", placed_at="yesterday")
    )
    result = CliRunner().invoke(main, ["orders", "import", str(path)], env=cli_env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"Error: {path}:2: bad date for placed_at: 'yesterday'")
    empty = CliRunner().invoke(main, ["orders", "show", "NW-100001"], env=cli_env)
    assert empty.exit_code == 1 and "orders table is empty" in empty.output


def test_cli_without_an_order_system(cli_env, tmp_path):
    env = {**cli_env, "CHATBOT_ORDERS__CONNECTOR": "none"}
    shown = CliRunner().invoke(main, ["orders", "show", "NW-100001"], env=env)
    assert shown.exit_code == 1
    assert shown.output.strip() == (
        "Error: orders.connector is 'none': no order system is connected (docs/orders.md)"
    )
    path = _write(tmp_path / "orders.jsonl", _line("NW-100001"))
    loaded = _cli(env, "orders", "import", str(path))
    assert loaded.exit_code == 0
    assert "note: orders.connector is 'none'" in loaded.output


def test_cli_import_into_an_unmigrated_store_says_what_to_do(tmp_path):
    path = _write(tmp_path / "orders.jsonl", _line("NW-100001"))
    env = {"CHATBOT_HOME": str(tmp_path)}
    result = CliRunner().invoke(main, ["orders", "import", str(path)], env=env)
    assert result.exit_code == 1 and "run: chatbot db upgrade" in result.output


def test_the_orders_table_is_known_to_the_models():
    from chatbot.store.schema import Base

    assert Base.metadata.tables["orders"] is OrderRow.__table__
