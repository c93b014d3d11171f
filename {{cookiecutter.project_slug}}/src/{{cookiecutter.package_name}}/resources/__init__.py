"""One folder per resource: model, schemas, repository, router."""
