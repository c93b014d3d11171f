"""Organization stats for dashboards: counts that stay cheap on large tables."""
