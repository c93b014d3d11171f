"""Authentication (JWT, password hashing), tenancy and RBAC enforcement."""
