"""Database access: the declarative base, engines with read/write routing, unit of work, upsert."""
