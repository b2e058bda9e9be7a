"""Credential formats shared by the policy, the backends and the CLI: what a client presents
(`presented`), password hash schemes (`passwords`) and our API token format (`tokens`)."""
