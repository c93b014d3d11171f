"""AI calls as jobs: pinned prompts (prompts/ + lock), a provider interface, project summaries."""
