"""Tasks: belong to a project; keyset-listed; upserted by external key."""
