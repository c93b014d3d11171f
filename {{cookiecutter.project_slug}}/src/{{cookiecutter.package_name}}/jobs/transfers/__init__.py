"""CSV exports and imports of a project's tasks, run as jobs; files live in `storage_dir`."""
