"""The taxonomy table against the reference: every Graph member, every §5.3 mapping row, inference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defender_lineage_core import taxonomy as tx
from tests.fixture_paths import GRAPH_REFERENCE

REFERENCE = GRAPH_REFERENCE

# §1.3 of the reference, in CSDL order.
GRAPH_SERVICES = [
    "unknown", "microsoftDefenderForEndpoint", "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps", "microsoftDefenderForOffice365", "microsoft365Defender",
    "azureAdIdentityProtection", "microsoftAppGovernance", "dataLossPrevention", "unknownFutureValue",
    "microsoftDefenderForCloud", "microsoftSentinel", "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence", "microsoftSecurityForAI",
]  # fmt: skip
GRAPH_DETECTIONS = [
    "unknown", "microsoftDefenderForEndpoint", "antivirus", "smartScreen", "customTi",
    "microsoftDefenderForOffice365", "automatedInvestigation", "microsoftThreatExperts",
    "customDetection", "microsoftDefenderForIdentity", "cloudAppSecurity", "microsoft365Defender",
    "azureAdIdentityProtection", "manual", "microsoftDataLossPrevention", "appGovernancePolicy",
    "appGovernanceDetection", "unknownFutureValue", "microsoftDefenderForCloud", "microsoftDefenderForIoT",
    "microsoftDefenderForServers", "microsoftDefenderForStorage", "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases", "microsoftDefenderForContainers", "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService", "microsoftDefenderForKeyVault", "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement", "nrtAlerts", "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics", "builtInMl", "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence", "microsoftDefenderForAIServices", "securityCopilot", "microsoftSentinel",
]  # fmt: skip


def _variants(value: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", value)
    return [value, value.lower(), value.upper(), value.swapcase(), spaced, spaced.replace(" ", "_"), f" {value} "]


def test_members_are_exactly_the_graph_enums_in_order() -> None:
    assert list(tx.SERVICE_MEMBERS) == GRAPH_SERVICES
    assert list(tx.DETECTION_MEMBERS) == GRAPH_DETECTIONS


def _reference_members(heading: str) -> list[str]:
    """The member column of a §1.3 enum table of the reference, in its order."""
    section = REFERENCE.read_text(encoding="utf-8").split("### 1.3", 1)[1].split("### 1.4", 1)[0]
    block = section.split(f"**{heading}**", 1)[1].split("\n\n", 2)[1]
    members = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].isdigit():
            members.append(cells[0])
    return members


def test_members_are_the_references_current_tables() -> None:
    """The reference is kept current with the CSDL (newest members included): the taxonomy follows it."""
    assert _reference_members("serviceSource") == list(tx.SERVICE_MEMBERS)
    assert _reference_members("detectionSource") == list(tx.DETECTION_MEMBERS)


# Display forms the Defender streaming API's rows really carry (tests/fixtures/streaming).
@pytest.mark.parametrize(
    ("service", "detection", "expected"),
    [
        ("Defender for Cloud Apps", "UEBA", ("microsoftDefenderForCloudApps", "unknown")),
        ("Defender for Endpoint", "Defender for Endpoint", ("microsoftDefenderForEndpoint",) * 2),
        ("Defender for Office 365", "Defender for Office 365", ("microsoftDefenderForOffice365",) * 2),
        ("Defender for Identity", "Defender for Identity", ("microsoftDefenderForIdentity",) * 2),
        (
            "Microsoft Defender for Cloud Apps",
            "Defender for Cloud Apps",
            ("microsoftDefenderForCloudApps", "cloudAppSecurity"),
        ),
    ],
)
def test_streaming_short_names(service: str, detection: str, expected: tuple[str, str]) -> None:
    resolved = (tx.canonical_service(service), tx.canonical_detection(detection))
    assert (resolved[0].value, resolved[1].value) == expected
    assert all(r.known for r in resolved)


@pytest.mark.parametrize("member", GRAPH_SERVICES)
def test_every_service_member_maps_to_itself(member: str) -> None:
    for variant in _variants(member):
        resolution = tx.canonical_service(variant)
        assert (resolution.value, resolution.known, resolution.via) == (member, True, "canonical"), variant
        assert resolution.label


@pytest.mark.parametrize("member", GRAPH_DETECTIONS)
def test_every_detection_member_maps_to_itself_and_is_described(member: str) -> None:
    for variant in _variants(member):
        resolution = tx.canonical_detection(variant)
        assert (resolution.value, resolution.known, resolution.via) == (member, True, "canonical"), variant
    assert tx.DETECTIONS[member].label
    assert tx.DETECTIONS[member].description.endswith(".")


@pytest.mark.parametrize(
    ("vocabulary", "member", "expected"),
    [
        (tx.SERVICE, "microsoftDefenderForEndpoint", "Microsoft Defender for Endpoint"),
        (tx.SERVICE, "azureAdIdentityProtection", "Microsoft Entra ID Protection"),
        (tx.SERVICE, "microsoft365Defender", "Microsoft Defender XDR"),
        (tx.DETECTION, "antivirus", "Antivirus"),
        (tx.DETECTION, "customTi", "Custom TI"),
        (tx.DETECTION, "microsoftDefenderForEndpoint", "EDR"),
        (tx.DETECTION, "azureAdIdentityProtection", "Microsoft Entra ID Protection"),
    ],
)
def test_labels(vocabulary: str, member: str, expected: str) -> None:
    assert tx.label(member, vocabulary) == expected


@pytest.mark.parametrize("alias", tx.DETECTION_ALIASES, ids=lambda a: a.alias)
def test_every_detection_alias_in_the_table(alias: tx.Alias) -> None:
    resolution = tx.canonical_detection(alias.alias)
    assert resolution.value == alias.canonical and resolution.known
    assert alias.confidence in ("H", "M", "L") and alias.source


@pytest.mark.parametrize("alias", tx.SERVICE_ALIASES, ids=lambda a: a.alias)
def test_every_service_alias_in_the_table(alias: tx.Alias) -> None:
    resolution = tx.canonical_service(alias.alias)
    assert resolution.value == alias.canonical and resolution.known
    assert alias.confidence in ("H", "M", "L") and alias.source


# The tokens the brief and the blog name, per vocabulary.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("WindowsDefenderAtp", "microsoftDefenderForEndpoint"),
        ("Windows DefenderATP", "microsoftDefenderForEndpoint"),
        ("WindowsDefenderAv", "antivirus"),
        ("Windows DefenderAV", "antivirus"),
        ("WindowsDefenderSmartScreen", "smartScreen"),
        ("Windows Defender SmartScreen", "smartScreen"),
        ("CustomerTI", "customTi"),
        ("OfficeATP", "microsoftDefenderForOffice365"),
        ("AutomatedInvestigation", "automatedInvestigation"),
        ("ThreatExperts", "microsoftThreatExperts"),
        ("CustomDetection", "customDetection"),
        ("AzureATP", "microsoftDefenderForIdentity"),
        ("MCAS", "cloudAppSecurity"),
        ("MTP", "microsoft365Defender"),
        ("Manual", "manual"),
        ("EDR", "microsoftDefenderForEndpoint"),
        ("Antivirus", "antivirus"),
        ("SmartScreen", "smartScreen"),
        ("Custom TI", "customTi"),
        ("Custom detection", "customDetection"),
        ("Automated investigation", "automatedInvestigation"),
        ("Microsoft Defender for Endpoint", "microsoftDefenderForEndpoint"),
        ("Microsoft Defender for Office 365", "microsoftDefenderForOffice365"),
        ("Microsoft Defender for Identity", "microsoftDefenderForIdentity"),
        ("Microsoft Defender for Cloud Apps", "cloudAppSecurity"),
        ("Microsoft Defender XDR", "microsoft365Defender"),
        ("Microsoft 365 Defender", "microsoft365Defender"),
        ("Microsoft Threat Experts", "microsoftThreatExperts"),
        ("Microsoft Defender Experts", "microsoftThreatExperts"),
        ("Microsoft Data Loss Prevention", "microsoftDataLossPrevention"),
        ("App governance policy", "appGovernancePolicy"),
        ("App governance detection", "appGovernanceDetection"),
        ("AADIdentityProtection", "azureAdIdentityProtection"),
    ],
)
def test_detection_vocabulary(value: str, expected: str) -> None:
    assert tx.canonical_detection(value).value == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MicrosoftDefenderATP", "microsoftDefenderForEndpoint"),
        ("Microsoft Defender ATP", "microsoftDefenderForEndpoint"),
        ("MicrosoftDefenderForEndpoint", "microsoftDefenderForEndpoint"),
        ("Microsoft Defender for Endpoint", "microsoftDefenderForEndpoint"),
        ("OfficeATP", "microsoftDefenderForOffice365"),
        ("Office 365 ATP", "microsoftDefenderForOffice365"),
        ("MicrosoftCloudAppSecurity", "microsoftDefenderForCloudApps"),
        ("MCAS", "microsoftDefenderForCloudApps"),
        ("Azure ATP", "microsoftDefenderForIdentity"),
        ("MicrosoftDefenderForIdentity", "microsoftDefenderForIdentity"),
        ("Microsoft365Defender", "microsoft365Defender"),
        ("Microsoft Defender XDR", "microsoft365Defender"),
        ("MTP", "microsoft365Defender"),
        ("AADIdentityProtection", "azureAdIdentityProtection"),
        ("IPC", "azureAdIdentityProtection"),
        ("Azure AD Identity Protection", "azureAdIdentityProtection"),
        ("App governance", "microsoftAppGovernance"),
        ("Azure Security Center", "microsoftDefenderForCloud"),
        ("ASC", "microsoftDefenderForCloud"),
        ("Azure Sentinel", "microsoftSentinel"),
        ("MicrosoftDefenderForOffice365", "microsoftDefenderForOffice365"),
    ],
)
def test_service_vocabulary(value: str, expected: str) -> None:
    assert tx.canonical_service(value).value == expected


def test_ambiguous_tokens_resolve_per_vocabulary() -> None:
    assert tx.canonical_detection("MCAS").value == "cloudAppSecurity"
    assert tx.canonical_service("MCAS").value == "microsoftDefenderForCloudApps"
    assert tx.canonical_detection("Microsoft Defender for Cloud Apps").value == "cloudAppSecurity"
    assert tx.canonical_service("EDR").known is False  # a mechanism, not a product
    assert tx.canonical_detection("App governance").known is False  # policy or detection?


# --- §5.3 of the reference, read from the reference itself ------------------------------------

_QUOTED = re.compile(r'"([^"]+)"')


def _row_tokens(cell: str) -> list[list[str]]:
    """Alias groups of a §5.3 first column: ``A ("x"/"y") / B`` -> [[A, x, y], [B]]."""
    cell = cell.strip()
    if cell.startswith("(") and cell.endswith(")"):
        return [[t.strip()] for t in cell[1:-1].split(",")]
    groups = []
    for part in re.split(r"\s/\s", cell):
        quoted = _QUOTED.findall(part)
        bare = re.sub(r"\([^)]*\)", "", _QUOTED.sub("", part)).strip()
        names = [bare] if bare else []
        names += [q for chunk in quoted for q in chunk.split('"/"')]
        groups.append(names)
    return groups


def _section_rows(heading: str) -> list[tuple[str, str, str, str]]:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split("### 5.3", 1)[1].split("###", 1)[0]
    block = section.split(f"**{heading}**", 1)[1].split("**", 1)[0]
    rows = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0].startswith(("Legacy", "---")):
            continue
        rows.append((cells[0], cells[1], cells[2][:1], line))
    return rows


def _expectations(heading: str) -> list[tuple[str, str, str]]:
    out = []
    for legacy, graph, confidence, _ in _section_rows(heading):
        targets = [t.strip() for t in re.split(r"\s/\s|,\s", graph)]
        if graph.startswith("no Graph member"):
            targets = ["unknown"]
        groups = _row_tokens(legacy)
        for index, names in enumerate(groups):
            target = targets[index] if len(targets) == len(groups) else targets[0]
            out.extend((name, target, confidence) for name in names)
    return out


def _alias_entry(aliases: tuple[tx.Alias, ...], token: str) -> tx.Alias | None:
    key = tx.normalise(token)
    return next((a for a in aliases if tx.normalise(a.alias) == key), None)


@pytest.mark.parametrize(
    ("heading", "resolve", "aliases"),
    [
        ("detectionSource", tx.canonical_detection, tx.DETECTION_ALIASES),
        ("serviceSource", tx.canonical_service, tx.SERVICE_ALIASES),
    ],
)
def test_reference_5_3_rows(heading, resolve, aliases) -> None:
    expectations = _expectations(heading)
    assert len(expectations) >= 10
    for token, target, confidence in expectations:
        assert resolve(token).value == target, (heading, token)
        entry = _alias_entry(aliases, token)
        assert entry is not None, f"{heading} alias {token!r} missing from the table"
        assert entry.confidence == confidence, (heading, token)


# --- inference --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detection", "service"),
    [
        ("antivirus", "microsoftDefenderForEndpoint"),
        ("smartScreen", "microsoftDefenderForEndpoint"),
        ("customTi", "microsoftDefenderForEndpoint"),
        ("microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint"),
        ("microsoftDefenderForOffice365", "microsoftDefenderForOffice365"),
        ("microsoftDefenderForIdentity", "microsoftDefenderForIdentity"),
        ("cloudAppSecurity", "microsoftDefenderForCloudApps"),
        ("appGovernancePolicy", "microsoftAppGovernance"),
        ("appGovernanceDetection", "microsoftAppGovernance"),
        ("azureAdIdentityProtection", "azureAdIdentityProtection"),
        ("microsoftDataLossPrevention", "dataLossPrevention"),
        ("microsoftDefenderForServers", "microsoftDefenderForCloud"),
        ("microsoftDefenderForKeyVault", "microsoftDefenderForCloud"),
        ("scheduledAlerts", "microsoftSentinel"),
        ("nrtAlerts", "microsoftSentinel"),
        ("microsoftSentinel", "microsoftSentinel"),
        ("microsoftInsiderRiskManagement", "microsoftInsiderRiskManagement"),
        ("customDetection", None),
        ("manual", None),
        ("automatedInvestigation", None),
        ("microsoftThreatExperts", None),
        ("unknown", None),
        ("unknownFutureValue", None),
        ("WindowsDefenderAv", None),  # takes canonical values only
        ("", None),
        (None, None),
    ],
)
def test_infer_service(detection: str | None, service: str | None) -> None:
    assert tx.infer_service(detection) == service


def test_every_inference_names_a_service_and_a_reason() -> None:
    for member in tx.DETECTIONS.values():
        if member.service is not None:
            assert member.service in tx.SERVICES and member.service_reason, member.value


def test_inferred_resolution() -> None:
    resolution = tx.inferred_service("antivirus")
    assert (resolution.value, resolution.via, resolution.known) == (
        "microsoftDefenderForEndpoint",
        "inferred",
        True,
    )
    assert tx.inferred_service("manual").via == "absent"


# --- unknown values and properties ------------------------------------------------------------


@pytest.mark.parametrize("value", ["SomethingNew", "  padded  ", "ünïcödé", "a/b", "0"])
def test_unknown_passes_through(value: str) -> None:
    for resolve in (tx.canonical_service, tx.canonical_detection):
        resolution = resolve(value)
        assert (resolution.value, resolution.known, resolution.via, resolution.label) == (
            value.strip(),
            False,
            "unknown",
            "",
        )
        assert resolution.raw == value


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent(value: str | None) -> None:
    assert tx.canonical_service(value).via == "absent"
    assert tx.canonical_detection(value).value == ""


@given(st.text(max_size=60))
def test_random_strings_never_raise_and_are_idempotent(value: str) -> None:
    for resolve in (tx.canonical_service, tx.canonical_detection):
        first = resolve(value)
        again = resolve(first.value)
        assert again.value == first.value
        assert again.known == first.known


@given(st.sampled_from(GRAPH_DETECTIONS + [a.alias for a in tx.DETECTION_ALIASES]), st.data())
def test_case_and_separator_noise_is_ignored(value: str, data: st.DataObject) -> None:
    noisy = "".join(data.draw(st.sampled_from([c.upper(), c.lower(), c + "_", c + "-", c + " "])) for c in value)
    assert tx.canonical_detection(noisy).value == tx.canonical_detection(value).value
