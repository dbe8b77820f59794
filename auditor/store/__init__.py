"""The store: the lake of Parquet snapshots and evaluations, the catalog of views over it, its writers and readers."""
