"""The store's schema history: numbered SQL migrations, one transaction each, refused when inconsistent."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from parley.appliance.store import MigrationError, MigrationSet, Store
from parley.appliance.store.database import open_database

FIRST = """
-- shops and their orders
CREATE TABLE shops (id INTEGER PRIMARY KEY, name TEXT NOT NULL) STRICT;
CREATE TABLE orders (id INTEGER PRIMARY KEY, shop_id INTEGER NOT NULL REFERENCES shops (id)) STRICT;
"""

SECOND = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;
-- a trigger body and a quoted ';' must reach SQLite as one statement each
CREATE TRIGGER notes_stay BEFORE DELETE ON notes
BEGIN
    SELECT RAISE(ABORT, 'notes stay; always');
END;
INSERT INTO shops (id, name) VALUES (1, 'Acme; the shop');
INSERT INTO orders (id, shop_id) VALUES (10, 1);
"""

THIRD = "CREATE INDEX orders_by_shop ON orders (shop_id);\n"


def migration_set(folder, **files):
    folder.mkdir(exist_ok=True)
    for filename, sql in files.items():
        (folder / f"{filename}.sql").write_text(sql)
    return MigrationSet.from_folder(folder)


def assert_clean(db):
    assert list(db.query("PRAGMA foreign_key_check")) == []
    assert [row["integrity_check"] for row in db.query("PRAGMA integrity_check")] == ["ok"]


@pytest.fixture
def db(tmp_path):
    database = open_database(tmp_path / "store.db")
    yield database
    database.close()


def test_migrations_apply_in_order_from_an_empty_database(tmp_path, db):
    migrations = migration_set(tmp_path / "m", **{"0001_shops": FIRST, "0002_notes": SECOND, "0003_index": THIRD})
    before = datetime.now(UTC)

    applied_now = migrations.apply(db)

    assert [migration.filename for migration in applied_now] == ["0001_shops.sql", "0002_notes.sql", "0003_index.sql"]
    records = migrations.applied(db)
    assert [(record.number, record.name) for record in records] == [(1, "shops"), (2, "notes"), (3, "index")]
    for record, sql in zip(records, [FIRST, SECOND, THIRD]):
        assert record.sha256 == hashlib.sha256(sql.encode()).hexdigest()
        assert before - timedelta(seconds=1) <= record.applied_at <= datetime.now(UTC)
    assert [row["name"] for row in db.query("SELECT name FROM shops")] == ["Acme; the shop"]
    assert "notes_stay" in db.triggers_dict
    assert migrations.pending(db) == []
    assert_clean(db)


def test_reapplying_does_nothing_and_keeps_the_bookkeeping_rows(tmp_path, db):
    migrations = migration_set(tmp_path / "m", **{"0001_shops": FIRST, "0002_notes": SECOND})
    migrations.apply(db)
    records = migrations.applied(db)

    assert migrations.apply(db) == []

    assert migrations.applied(db) == records
    assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 1


def test_a_new_migration_is_applied_on_top_of_the_old_ones(tmp_path, db):
    folder = tmp_path / "m"
    migration_set(folder, **{"0001_shops": FIRST, "0002_notes": SECOND}).apply(db)

    migrations = migration_set(folder, **{"0003_index": THIRD})

    assert [migration.number for migration in migrations.pending(db)] == [3]
    assert [migration.number for migration in migrations.apply(db)] == [3]
    assert [record.number for record in migrations.applied(db)] == [1, 2, 3]


def test_pending_and_applied_only_read(tmp_path, db):
    migrations = migration_set(tmp_path / "m", **{"0001_shops": FIRST, "0002_notes": SECOND})

    assert [migration.number for migration in migrations.pending(db)] == [1, 2]
    assert migrations.applied(db) == []

    assert db.table_names() == []
    assert db.conn.total_changes == 0


def test_a_migration_changed_after_it_was_applied_is_refused(tmp_path, db):
    folder = tmp_path / "m"
    migration_set(folder, **{"0001_shops": FIRST}).apply(db)

    edited = migration_set(folder, **{"0001_shops": FIRST + "ALTER TABLE shops ADD COLUMN city TEXT;\n"})

    with pytest.raises(MigrationError, match=r"0001_shops\.sql was applied on .* different content .* new migration"):
        edited.pending(db)
    with pytest.raises(MigrationError):
        edited.apply(db)
    assert "city" not in db.table("shops").columns_dict


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "store.db"
    shipped = {m.filename.removesuffix(".sql"): m.sql for m in MigrationSet.packaged().migrations}
    future = f"{len(shipped) + 1:04d}_future"
    newer = migration_set(tmp_path / "newer", **shipped, **{future: "CREATE TABLE from_the_future (id INTEGER PRIMARY KEY);\n"})
    db = open_database(path)
    newer.apply(db)
    db.close()

    with pytest.raises(MigrationError, match=rf"{future}\.sql applied .* newer Parley"):
        Store.open(path)


def test_a_failing_migration_leaves_the_database_at_the_previous_version(tmp_path, db):
    folder = tmp_path / "m"
    broken = (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n"
        "INSERT INTO shops (name) VALUES ('half');\n"
        "INSERT INTO nowhere VALUES (1);\n"
    )
    migrations = migration_set(folder, **{"0001_shops": FIRST, "0002_broken": broken})

    failed = r"0002_broken\.sql failed at statement 3 \(no such table: nowhere\).* stays at migration 0001"
    with pytest.raises(MigrationError, match=failed):
        migrations.apply(db)

    assert [record.number for record in migrations.applied(db)] == [1]
    assert "notes" not in db.table_names()
    assert db.execute("SELECT count(*) FROM shops").fetchone()[0] == 0
    assert_clean(db)

    fixed = migration_set(folder, **{"0002_broken": broken.replace("INSERT INTO nowhere VALUES (1);\n", "")})
    assert [migration.number for migration in fixed.apply(db)] == [2]


def test_transaction_control_inside_a_migration_is_refused(tmp_path, db):
    sneaky = "CREATE TABLE a (id INTEGER PRIMARY KEY);\nCOMMIT;\nCREATE TABLE b (id INTEGER PRIMARY KEY);\n"
    migrations = migration_set(tmp_path / "m", **{"0001_sneaky": sneaky})

    with pytest.raises(MigrationError, match="BEGIN/COMMIT/SAVEPOINT"):
        migrations.apply(db)

    assert db.table_names() == []


def test_a_hand_edited_history_is_refused(tmp_path, db):
    migrations = migration_set(tmp_path / "m", **{"0001_shops": FIRST, "0002_notes": SECOND, "0003_index": THIRD})
    migrations.apply(db)
    db.execute("DELETE FROM schema_migrations WHERE number = 2")

    with pytest.raises(MigrationError, match="records migration 0003 but not 0002_notes.sql"):
        migrations.pending(db)


@pytest.mark.parametrize(
    "filenames",
    [["0001_a", "0003_c"], ["0002_b"], ["0001_a", "0001_again"]],
    ids=["gap", "not from 0001", "repeat"],
)
def test_migrations_must_be_numbered_without_gaps(tmp_path, filenames):
    with pytest.raises(MigrationError, match="without gaps or repeats"):
        migration_set(tmp_path / "m", **{name: "SELECT 1;" for name in filenames})


def test_a_misnamed_migration_file_is_refused_rather_than_skipped(tmp_path):
    with pytest.raises(MigrationError, match="NNNN_snake_case_name.sql"):
        migration_set(tmp_path / "m", **{"0001_a": "SELECT 1;", "2-add-things": "SELECT 1;"})


def test_the_shipped_schema_applies_cleanly(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        shipped = MigrationSet.packaged()
        assert [(record.number, record.sha256) for record in shipped.applied(store.db)] == [
            (migration.number, migration.sha256) for migration in shipped.migrations
        ]
        tables = {"schema_migrations", "agents", "agent_versions", "calls", "turns", "spans", "tool_calls", "audit_log"}
        assert tables <= set(store.db.table_names())
        assert_clean(store.db)
