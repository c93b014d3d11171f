"""Background work: one job wrapper (retries, dead letters, metrics), the outbox and its relay,
and the jobs themselves (webhooks, CSV exports and imports, AI calls). See README "Background jobs".
"""
