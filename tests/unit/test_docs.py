"""The docs stay true to the code: references resolve, every setting is documented, one version."""

from __future__ import annotations

import argparse
import re
import subprocess
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel

import callout
from callout.cli import build_parser
from callout.decision import BackendName, Reason
from callout.observability.distribution import DistributionMetrics
from callout.observability.metrics import Metrics
from callout.policy.models import LintCode
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.protocol.versions import ADVISORIES
from callout.sessions.metrics import SessionMetrics
from callout.settings import (
    LdapBackendSettings,
    OidcBackendSettings,
    Settings,
    StaticBackendSettings,
    TokenBackendSettings,
    load_settings,
)
from callout.settings.backends.certificates import CertificateBackendSettings
from callout.state.health import StateHealth

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(r"docs/(protocol|operations)\.md\s*#([a-z0-9-]+)")


def _tracked() -> list[Path]:
    """The repository's files (git's list; without git, the tree minus hidden and build dirs)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = re.compile(r"(^|/)(\.[^/]+|build|dist|[^/]+\.egg-info)/")
        return [
            p for p in ROOT.rglob("*") if p.is_file() and not skip.search(str(p.relative_to(ROOT)))
        ]
    return [ROOT / name for name in out.splitlines() if (ROOT / name).is_file()]


def _text_files() -> Iterator[tuple[Path, str]]:
    for path in _tracked():
        if path.suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".conf", ""}:
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:
                continue


def _anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    for line in document.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_protocol_and_operations_references_point_into_the_repository() -> None:
    """The notes the code relies on are in docs/, and every cited section exists."""
    anchors = {name: _anchors(ROOT / "docs" / f"{name}.md") for name in ("protocol", "operations")}
    cited = 0
    for path, text in _text_files():
        for line_no, line in enumerate(text.splitlines(), 1):
            bare = re.sub(r"docs/(protocol|operations)\.md", "", line)
            assert not re.search(r"\b(protocol|operations)\.md", bare), (
                f"{path.relative_to(ROOT)}:{line_no} cites a document outside docs/"
            )
        for document, anchor in _REFERENCE.findall(text.replace("\n#", "#")):
            cited += 1
            assert anchor in anchors[document], f"{path.relative_to(ROOT)}: no {document}#{anchor}"
    assert cited > 20


def _settings_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = prefix + name
        annotation = field.annotation
        options = [annotation, *typing.get_args(annotation)]
        values = [
            arg
            for option in options
            if typing.get_origin(option) is dict
            for arg in typing.get_args(option)
        ]
        if name == "backends":  # per-backend keys have rows of their own ("ldap: ...")
            yield path
        elif nested := [v for v in values if isinstance(v, type) and issubclass(v, BaseModel)]:
            yield path
            yield from _settings_keys(nested[0], f"{path}.NAME.")
        elif nested := [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]:
            yield from _settings_keys(nested[0], f"{path}.")
        else:
            yield path


def _configuration_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]


def _keys_in(cell: str) -> set[str]:
    """The `keys` of one table cell; `.x` continues the previous key's parent (`a.b`, `.x`)."""
    keys: set[str] = set()
    parent = ""
    for written in re.findall(r"`([^`]+)`", cell):
        key = written.replace("[]", "")
        if key.startswith(".") and parent:
            keys.add(parent + key)
        else:
            keys.add(key)
            parent = key.rsplit(".", 1)[0]
    return keys


def _documented_keys() -> set[str]:
    """Keys in the first column of the README's configuration table."""
    keys: set[str] = set()
    for row in _configuration_section().splitlines():
        if row.startswith("| `"):
            keys |= _keys_in(row.split(" | ")[0])
    return keys


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """Derived from the settings model: a new key without a README row fails here."""
    missing = sorted(set(_settings_keys(Settings)) - _documented_keys())
    assert not missing, f"settings keys missing from README's configuration reference: {missing}"


def _documented_backend_keys(kind: str) -> set[str]:
    """Keys of the README rows ``| ldap: `urls`, `groups.mode`, `.base` | ...``."""
    keys: set[str] = set()
    for row in re.findall(rf"^\| {kind}: (.*?) \|", _configuration_section(), re.MULTILINE):
        keys |= _keys_in(row)
    return keys


def test_every_backend_setting_is_in_the_readme_configuration_table() -> None:
    """Per-backend keys have rows of their own; `type` and `accepts` are common rows."""
    models: dict[str, type[BaseModel]] = {
        "static": StaticBackendSettings,
        "ldap": LdapBackendSettings,
        "token": TokenBackendSettings,
        "oidc": OidcBackendSettings,
        "cert": CertificateBackendSettings,
    }
    for kind, model in models.items():
        keys = set(_settings_keys(model)) - {"type", "accepts"}
        missing = sorted(keys - _documented_backend_keys(kind))
        assert not missing, f"{kind} backend keys missing from README: {missing}"


# The source, the changelog, and image tags, which YAML and a Dockerfile's default cannot
# compute: tests/deploy/test_manifests.py pins each of those to callout.__version__.
_VERSION_ALLOWED = {
    "callout/__init__.py",
    "CHANGELOG.md",
    "Dockerfile",
    "deploy/kustomize/overlays/example/kustomization.yaml",
    "deploy/nats-chart/values-callout.yaml",
}


def test_the_version_is_written_in_one_place() -> None:
    """Everything else derives from callout.__version__ (package metadata, images, manifests)."""
    version = re.escape(callout.__version__)
    pattern = re.compile(rf"(?<![\d.]){version}(?![\d.])")
    found = [
        str(path.relative_to(ROOT))
        for path, text in _text_files()
        if str(path.relative_to(ROOT)) not in _VERSION_ALLOWED
        and not path.name.endswith(".lock")
        and "tests/data" not in str(path)
        and pattern.search(text)
    ]
    assert not found, f"{callout.__version__} hard-coded in {found}"


def test_license_is_the_apache_2_0_text_the_package_declares() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


def test_changelog_has_an_entry_for_the_current_version() -> None:
    """Keep a Changelog: an Unreleased section and one per released version."""
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(
        rf"^## \[{re.escape(callout.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M
    )


def test_roles_the_docs_pass_to_token_new_exist_in_the_example_policies() -> None:
    """`callout token new --roles deploy` named a role the examples do not have (deployer)."""
    defined: set[str] = set()
    for path in (ROOT / "policies").glob("*.yaml"):
        document = yaml.safe_load(path.read_text()) or {}
        defined |= set(document.get("roles") or {})
    used = []
    for doc in ("README.md", "policies/README.md", "deploy/README.md"):
        for roles in re.findall(r"--roles ([a-z][\w,-]*)", (ROOT / doc).read_text()):
            used += roles.split(",")
    assert used
    assert not set(used) - defined, f"roles in the docs but not in policies/: {set(used) - defined}"


def _metrics_table() -> dict[str, dict[str, set[str] | None]]:
    """README's metrics table: each metric of a row's first cell -> label -> documented values.

    A label written `reason` (a/b/c) or (a, b, c) has those values; a bare `label` has None.
    """
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Probes and metrics", 1)[1].split("\n### ", 1)[0]
    table: dict[str, dict[str, set[str] | None]] = {}
    for row in section.splitlines():
        if not row.startswith("| `callout_"):
            continue
        names, _kind, labels = row.split(" | ")[:3]
        documented: dict[str, set[str] | None] = {}
        for label, values in re.findall(r"`(\w+)`(?: \(([^)]*)\))?", labels):
            documented[label] = set(re.split(r"[/,]\s*", values)) if values else None
        for name in re.findall(r"`(callout_\w+)`", names):
            table[name] = documented
    return table


@dataclass
class _FileReloads:
    """A backend that re-reads files of its own, as the cert backend is (`ReloadsFiles`)."""

    name: str = BackendName.CERT
    reloaded: int = 0
    reload_failures: int = 0


def _exported() -> dict[str, dict[str, set[str]]]:
    """Every `callout_*` series a started service exports (sessions on), by exposition name."""
    metrics = Metrics()
    SessionMetrics(metrics.registry)
    DistributionMetrics(metrics.registry)  # policy.source: kv
    StateHealth(metrics.registry)  # state.enabled
    metrics.prime_backends(list(BackendName))
    metrics.watch_file_reloads([_FileReloads()])
    metrics.policy_loaded(users=1, groups=1, digest="0" * 64)
    exported: dict[str, dict[str, set[str]]] = {}
    for family in metrics.registry.collect():
        if not family.name.startswith("callout_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = exported.setdefault(name, {})
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label != "le":
                    labels.setdefault(label, set()).add(value)
    return exported


def test_every_metric_is_in_the_readme_metrics_table_with_its_labels() -> None:
    """Derived from the registry: a new metric, label or label value without a row fails here,
    and so does a row for a metric the service no longer exports."""
    table, exported = _metrics_table(), _exported()
    assert sorted(set(exported) - set(table)) == [], "exported, not in README's metrics table"
    assert sorted(set(table) - set(exported)) == [], "in README's metrics table, not exported"
    for name, labels in exported.items():
        if name == "callout_server_rejections_total":  # no series until the server refuses one
            continue
        assert set(labels) == set(table[name]), f"{name}: labels {sorted(labels)} in the code"
        for label, values in labels.items():
            documented = table[name][label]
            if documented is not None:
                assert values <= documented, (
                    f"{name}{{{label}}}: undocumented {values - documented}"
                )


def _policy_readme_section(title: str) -> str:
    text = (ROOT / "policies" / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_lint_code_is_in_the_policies_readme_tables() -> None:
    """Codes `policy check` prints (acknowledgeable ones, token and note codes, version
    advisories) are the codes policies/README.md's warning tables explain, both ways."""
    lint = (ROOT / "callout" / "policy" / "lint.py").read_text()
    printed = set(re.findall(r'_issue\(\s*\w+,\s*"([a-z-]+)"', lint, re.DOTALL))
    printed |= set(typing.get_args(LintCode)) | {advisory.code for advisory in ADVISORIES}
    section = _policy_readme_section("Warnings from `policy check`")
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    documented |= set(re.findall(r"\(`\[([a-z-]+)\]`\)", section))  # the notes' code
    assert printed == documented


def test_private_inbox_docs_name_every_backend() -> None:
    """The inbox prefix hashes `<backend>:<principal>`; the docs list the backend names."""
    section = _policy_readme_section("Grants by intent").split("### Private inboxes", 1)[1]
    listed = re.search(r"the backend is ((?:`\w+`(?:,\s| or\s)?)+)", section)
    assert listed
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == set(BackendName)


def _commands(
    parser: argparse.ArgumentParser, words: str = "callout"
) -> Iterator[tuple[str, set[str]]]:
    """(`callout policy check`, its option strings) for every leaf command of the CLI."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield (
            words,
            {
                option
                for action in parser._actions
                for option in action.option_strings
                if option.startswith("--") and option != "--help"
            },
        )
    for action in subparsers:
        for name, child in action.choices.items():
            yield from _commands(child, f"{words} {name}")


def test_the_readme_commands_table_shows_every_command_and_flag() -> None:
    """Each leaf command has a row (`callout policy check ...`), and every long option it takes
    is written in one of its rows: a new flag without documentation fails here."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in section.splitlines() if row.startswith("| `callout")]
    for command, options in _commands(build_parser()):
        prefix, last = command.rsplit(" ", 1)
        alternatives = rf"(?:[\w-]+\\\|)*{re.escape(last)}(?:\\\|[\w-]+)*"  # list\|kick
        mine = [row for row in rows if re.match(rf"\| `{re.escape(prefix)} {alternatives}\b", row)]
        assert mine, f"no row for {command} in README's Commands table"
        written = set(re.findall(r"--[a-z][a-z-]*", " ".join(r.split(" | ")[0] for r in mine)))
        for row in mine:  # `[...]`: the rest is in the section the row links to
            if "[...]" in row and (link := re.search(r"policies/README\.md#([a-z-]+)", row)):
                title = next(
                    t
                    for t in re.findall(
                        r"^## (.+)$", (ROOT / "policies/README.md").read_text(), re.M
                    )
                    if re.sub(r"[^a-z0-9 -]", "", t.lower()).replace(" ", "-") == link.group(1)
                )
                written |= set(re.findall(r"--[a-z][a-z-]*", _policy_readme_section(title)))
        assert options <= written, f"{command}: {sorted(options - written)} not in the table"


def test_the_verify_checklist_table_names_the_checks_the_tool_makes() -> None:
    """README "Before going live" explains each line `callout verify` can print, by its name."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Before going live: callout verify\n", 1)[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([a-z ]+)` \|", section, re.MULTILINE))
    documented |= set(re.findall(r"the check is called `([a-z ]+)`", section))
    source = "".join(
        (ROOT / "callout" / "tools" / f"{name}.py").read_text()
        for name in ("verify", "verifylogin", "verifyprobes", "checklist")
    )
    literals = set(re.findall(r'"([a-z ]+)"', source))
    made = set(re.findall(r'Check\(\s*"([a-z ]+)"', source))
    assert documented <= literals, f"documented, never made: {documented - literals}"
    assert made <= documented, f"made, not documented: {made - documented}"
    assert len(documented) == 12


# Paths the docs name that are the reader's, not ours: a test file of the reader's own, the
# overlay an operator copies, a kubectl resource.
_NOT_IN_THE_REPOSITORY = {
    "tests/devices.yaml",
    "deploy/kustomize/overlays/prod",
    "deploy/kustomize/overlays/prod/namespace.yaml",
    "deploy/nats-box",
}


def test_every_repository_path_the_docs_name_exists() -> None:
    """`tests/integration/test_intents.py` as evidence, `callout/policy/intents.py` as the place
    to look: a rename must take the docs along."""
    path = re.compile(r"(?<![\w/.-])((?:tests|callout|deploy|policies|docs)/[\w./-]*\w)")
    dangling = [
        f"{doc}: {name}"
        for doc in (
            "README.md",
            "SECURITY.md",
            "CHANGELOG.md",
            "policies/README.md",
            "deploy/README.md",
            "docs/protocol.md",
            "docs/operations.md",
        )
        for name in sorted(set(path.findall((ROOT / doc).read_text())))
        if name not in _NOT_IN_THE_REPOSITORY and not (ROOT / name).exists()
    ]
    assert not dangling


def _readme_settings_blocks() -> list[dict[str, typing.Any]]:
    """README's YAML blocks, `ADUA...`-style key placeholders made real account keys."""
    keys: dict[str, str] = {}

    def real(match: re.Match[str]) -> str:
        return keys.setdefault(match.group(0), KeyPair.generate(KeyRole.ACCOUNT).public_key)

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    return [yaml.safe_load(re.sub(r"\bA[A-Z0-9]{3}\.\.\.", real, block)) for block in blocks]


def _merged(base: dict[str, typing.Any], over: dict[str, typing.Any]) -> dict[str, typing.Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value) if both else value
    return out


def test_every_settings_block_of_the_readme_loads() -> None:
    """Each block an operator copies is valid settings (a fragment such as the scoped account's
    `operator:` block within the operator-mode example; a config-mode fragment with the keys
    and accounts it leaves out)."""
    blocks = _readme_settings_blocks()
    operator = next(block for block in blocks if block.get("mode") == "operator")
    config_mode = {"keys": {"issuer_seed_file": "/x"}, "accounts": ["APP"]}
    assert len(blocks) >= 6
    for block in blocks:
        base = operator if "operator" in block else config_mode
        load_settings(None, **_merged(base, block))


def test_the_deny_reasons_table_is_the_reason_enum() -> None:
    """policies/README.md "Deny reasons" explains every reason an audit event can carry for a
    denial, and no reason the code does not have."""
    section = _policy_readme_section("Deny reasons")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert documented == {reason.value for reason in Reason} - {Reason.ALLOWED.value}


def test_the_layout_table_has_a_row_for_every_package_and_module() -> None:
    """README "How the code is laid out": a new package or top-level module gets a row."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## How the code is laid out\n", 1)[1].split("\n## ", 1)[0]
    rows = " ".join(row.split(" | ")[0] for row in section.splitlines() if row.startswith("| `"))
    named = set(re.findall(r"`([\w.]+/?)`", rows))
    package = ROOT / "callout"
    present = {p.name + "/" for p in package.iterdir() if (p / "__init__.py").exists()}
    present |= {
        p.name for p in package.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}
    }
    assert present == named
