"""Users: registration, login, the current user."""
