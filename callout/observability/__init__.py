"""Logs (and later metrics, probes and audit): how the service shows what it does."""
