"""The SQL store: schema, engines and sessions, migrations."""
