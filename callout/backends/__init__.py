"""Credential backends behind one small Protocol (`callout.backends.base.Backend`)."""
