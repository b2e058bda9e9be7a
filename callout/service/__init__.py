"""The service: request pipeline, signer, worker and lifecycle."""
