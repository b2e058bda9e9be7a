"""Whatever a file holds, loading ends in a snapshot or a PolicyError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callout.errors import PolicyError
from callout.policy import load_policy

KEYS = [
    "version",
    "defaults",
    "roles",
    "users",
    "groups",
    "publish",
    "allow",
    "deny",
    "src",
    "times",
    "start",
    "end",
    "password",
    "nkey",
    "account",
    "expiry",
    "r",
    "alice",
    "{{",
]
scalars = st.one_of(
    st.sampled_from(
        ["1", "~", "true", "on", "17:00:00", "a..b", ">", "'{{user.name}}'", "[", "&a", "*a"]
    ),
    st.text(max_size=12),
)
yamlish = st.lists(
    st.tuples(
        st.integers(0, 3), st.sampled_from(KEYS), scalars, st.sampled_from([": ", ":", "- ", ""])
    ),
    max_size=12,
).map(lambda rows: "\n".join(f"{'  ' * d}{k}{sep}{v}" for d, k, v, sep in rows))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(yamlish, st.text(max_size=200), st.binary(max_size=100)))
def test_arbitrary_input_loads_or_raises_policy_error(content: str | bytes) -> None:
    """A broken ConfigMap must keep the last good policy, not crash the reload task."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "p.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text("version: 1\n" + content, encoding="utf-8", errors="surrogatepass")
        try:
            load_policy(Path(directory))
        except PolicyError as error:
            issues = error.issues
        else:
            issues = ["loaded"]
    assert issues
