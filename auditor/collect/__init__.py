"""Collection from OpenStack: connections, raw paging and bulk normalization."""
