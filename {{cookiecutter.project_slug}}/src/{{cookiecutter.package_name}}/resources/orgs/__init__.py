"""Organizations (tenants) and their memberships."""
