"""Projects: the organization-scoped example resource."""
