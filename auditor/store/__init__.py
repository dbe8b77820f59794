"""The DuckDB snapshot store: schema, writer, published read-only copy and read-only queries."""
