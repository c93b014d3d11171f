"""Signed webhooks (Standard Webhooks): endpoints per organization, events, fan-out, delivery."""
