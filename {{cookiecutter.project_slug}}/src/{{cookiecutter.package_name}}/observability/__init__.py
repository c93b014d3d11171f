"""Logging, metrics and (later) tracing: set up once at start-up."""
