"""Defender XDR source taxonomy: Graph v1.0 ``serviceSource``/``detectionSource`` members and aliases.

One table in code. Canonical values are the Graph v1.0 enum members (camelCase), including those
Graph returns only with ``Prefer: include-unknown-enum-members`` and the sentinels. Legacy Defender
API tokens (PascalCase), advanced-hunting display names and legacy Graph ``vendorInformation.provider``
values are aliases onto them. Services and detections have separate alias maps because some tokens
mean different members in each vocabulary (``OfficeATP``, ``MCAS``, ``Microsoft Defender for
Endpoint``).

Matching is case-insensitive and ignores spaces, underscores and hyphens; the module checks at
import time that this never makes two members of one vocabulary collide.

Sources (keys as in the project's graph-security-api reference): CSDL (members), M-QUEUE and
X-AHCHG (legacy and hunting names), D-MIGR (legacy Graph providers), the Deepwatch blog (spellings
seen in the field), the streaming API's Behavior* rows (short product names, ``UEBA``).
Confidence per alias: H = display names match 1:1 in Microsoft docs, M = name inference, L = only
unofficial evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

SERVICE = "service"
DETECTION = "detection"


@dataclass(frozen=True)
class Member:
    """One Graph enum member. ``service`` is the inferred owning service (detections only)."""

    value: str
    label: str
    description: str = ""
    service: Optional[str] = None
    service_reason: str = ""


@dataclass(frozen=True)
class Alias:
    """A spelling of a member in another vocabulary, with where it comes from and how sure we are."""

    alias: str
    canonical: str
    confidence: str
    source: str


@dataclass(frozen=True)
class Resolution:
    """What a raw value resolved to.

    ``value`` is the canonical member, or the raw value (stripped) when nobody knows it.
    ``via`` is ``canonical`` (a member, in any case), ``alias``, ``inferred``, ``unknown`` or
    ``absent`` (no value at all).
    """

    raw: str
    value: str
    label: str
    known: bool
    via: str


# --- serviceSource (CSDL order) ---------------------------------------------------------------

_SERVICES: Tuple[Member, ...] = (
    Member("unknown", "Unknown"),
    Member("microsoftDefenderForEndpoint", "Microsoft Defender for Endpoint"),
    Member("microsoftDefenderForIdentity", "Microsoft Defender for Identity"),
    Member("microsoftDefenderForCloudApps", "Microsoft Defender for Cloud Apps"),
    Member("microsoftDefenderForOffice365", "Microsoft Defender for Office 365"),
    Member("microsoft365Defender", "Microsoft Defender XDR"),
    Member("azureAdIdentityProtection", "Microsoft Entra ID Protection"),
    Member("microsoftAppGovernance", "App governance"),
    Member("dataLossPrevention", "Microsoft Purview Data Loss Prevention"),
    Member("unknownFutureValue", "Unknown future value"),
    Member("microsoftDefenderForCloud", "Microsoft Defender for Cloud"),
    Member("microsoftSentinel", "Microsoft Sentinel"),
    Member("microsoftInsiderRiskManagement", "Microsoft Purview Insider Risk Management"),
    Member("microsoftThreatIntelligence", "Microsoft Threat Intelligence"),
    Member("microsoftSecurityForAI", "Microsoft Security for AI"),
)

_MDE = "microsoftDefenderForEndpoint"
_MDC = "microsoftDefenderForCloud"
_SENTINEL = "microsoftSentinel"
_ONLY_MDE = "only Defender for Endpoint has this sensor"
_MDC_PLAN = "a Defender for Cloud plan"
_SENTINEL_RULE = "a Microsoft Sentinel analytics rule type"

# --- detectionSource (CSDL order) -------------------------------------------------------------
# ``service`` is set only where the mechanism exists in exactly one product; left None where it
# is shared (custom detections and manual alerts exist in several products; automated
# investigation runs in Defender for Endpoint and Office 365; Defender Experts covers all of XDR;
# Defender for IoT and for AI services sit between products; builtInMl is undocumented).

_DETECTIONS: Tuple[Member, ...] = (
    Member("unknown", "Unknown", "The detection mechanism was not reported."),
    Member(
        "microsoftDefenderForEndpoint",
        "EDR",
        "Behavioural endpoint detection and response sensor of Defender for Endpoint.",
        _MDE,
        _ONLY_MDE,
    ),
    Member(
        "antivirus",
        "Antivirus",
        "Microsoft Defender Antivirus (next-generation protection) on the device.",
        _MDE,
        _ONLY_MDE,
    ),
    Member(
        "smartScreen",
        "SmartScreen",
        "Microsoft Defender SmartScreen reputation checks on URLs, downloads and apps.",
        _MDE,
        _ONLY_MDE,
    ),
    Member(
        "customTi",
        "Custom TI",
        "A match on the tenant's own threat-intelligence indicators.",
        _MDE,
        "custom indicators raise alerts in Defender for Endpoint",
    ),
    Member(
        "microsoftDefenderForOffice365",
        "Microsoft Defender for Office 365",
        "Email and collaboration protection (Safe Links, Safe Attachments, anti-phishing).",
        "microsoftDefenderForOffice365",
        "only Defender for Office 365 has it",
    ),
    Member(
        "automatedInvestigation",
        "Automated investigation",
        "Automated investigation and response found the threat while investigating another alert.",
    ),
    Member(
        "microsoftThreatExperts",
        "Microsoft Defender Experts",
        "Microsoft's managed hunting service (Threat Experts / Defender Experts) flagged the activity.",
    ),
    Member(
        "customDetection",
        "Custom detection",
        "A custom detection rule (advanced-hunting query) written by the tenant.",
    ),
    Member(
        "microsoftDefenderForIdentity",
        "Microsoft Defender for Identity",
        "Identity sensors on domain controllers and identity infrastructure.",
        "microsoftDefenderForIdentity",
        "only Defender for Identity has it",
    ),
    Member(
        "cloudAppSecurity",
        "Microsoft Defender for Cloud Apps",
        "Cloud app activity and session policies of Defender for Cloud Apps.",
        "microsoftDefenderForCloudApps",
        "only Defender for Cloud Apps has it",
    ),
    Member(
        "microsoft365Defender",
        "Microsoft Defender XDR",
        "Cross-product correlation detections raised by Defender XDR itself.",
        "microsoft365Defender",
        "raised by Defender XDR's own correlation",
    ),
    Member(
        "azureAdIdentityProtection",
        "Microsoft Entra ID Protection",
        "Sign-in and user risk detections of Entra ID Protection.",
        "azureAdIdentityProtection",
        "only Entra ID Protection has it",
    ),
    Member("manual", "Manual", "An analyst created the alert by hand."),
    Member(
        "microsoftDataLossPrevention",
        "Microsoft Data Loss Prevention",
        "A Microsoft Purview data loss prevention policy match.",
        "dataLossPrevention",
        "only Purview DLP has it",
    ),
    Member(
        "appGovernancePolicy",
        "App governance policy",
        "An app governance policy on OAuth app behaviour matched.",
        "microsoftAppGovernance",
        "only app governance has it",
    ),
    Member(
        "appGovernanceDetection",
        "App governance detection",
        "App governance's built-in detection of anomalous OAuth app behaviour.",
        "microsoftAppGovernance",
        "only app governance has it",
    ),
    Member("unknownFutureValue", "Unknown future value", "Graph's evolvable-enum sentinel."),
    Member(
        "microsoftDefenderForCloud",
        "Microsoft Defender for Cloud",
        "Defender for Cloud's workload protection detections.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForIoT",
        "Microsoft Defender for IoT",
        "Network sensors for IoT and OT devices.",
    ),
    Member(
        "microsoftDefenderForServers",
        "Microsoft Defender for Servers",
        "Server workload protection in Azure, on-premises and other clouds.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForStorage",
        "Microsoft Defender for Storage",
        "Threat detection on storage account activity and uploads.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForDNS",
        "Microsoft Defender for DNS",
        "Detection of suspicious DNS queries from Azure resources.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForDatabases",
        "Microsoft Defender for Databases",
        "Threat detection on database engines (SQL, open-source relational, Cosmos DB).",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForContainers",
        "Microsoft Defender for Containers",
        "Runtime and control-plane detections for Kubernetes clusters and containers.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForNetwork",
        "Microsoft Defender for Network",
        "Network-layer detections on Azure network traffic.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForAppService",
        "Microsoft Defender for App Service",
        "Detections on Azure App Service applications and their hosts.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForKeyVault",
        "Microsoft Defender for Key Vault",
        "Detection of unusual access to Azure Key Vault.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForResourceManager",
        "Microsoft Defender for Resource Manager",
        "Detection of suspicious Azure Resource Manager operations.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "microsoftDefenderForApiManagement",
        "Microsoft Defender for API Management",
        "Detection of attacks on APIs published through Azure API Management.",
        _MDC,
        _MDC_PLAN,
    ),
    Member(
        "nrtAlerts",
        "NRT analytics rule",
        "A Microsoft Sentinel near-real-time analytics rule matched.",
        _SENTINEL,
        _SENTINEL_RULE,
    ),
    Member(
        "scheduledAlerts",
        "Scheduled analytics rule",
        "A Microsoft Sentinel scheduled analytics rule matched.",
        _SENTINEL,
        _SENTINEL_RULE,
    ),
    Member(
        "microsoftDefenderThreatIntelligenceAnalytics",
        "Microsoft Defender Threat Intelligence Analytics",
        "Sentinel's built-in rule matching logs against Microsoft threat intelligence.",
        _SENTINEL,
        _SENTINEL_RULE,
    ),
    Member("builtInMl", "Built-in ML", "A built-in machine-learning detection."),
    Member(
        "microsoftInsiderRiskManagement",
        "Microsoft Purview Insider Risk Management",
        "An insider risk management policy flagged user activity.",
        "microsoftInsiderRiskManagement",
        "only Insider Risk Management has it",
    ),
    Member(
        "microsoftThreatIntelligence",
        "Microsoft Threat Intelligence",
        "Microsoft Threat Intelligence attributed the activity to a tracked threat.",
        "microsoftThreatIntelligence",
        "only Microsoft Threat Intelligence has it",
    ),
    Member(
        "microsoftDefenderForAIServices",
        "Microsoft Defender for AI services",
        "Threat protection for AI workloads (prompt attacks, data leakage).",
    ),
    Member("securityCopilot", "Security Copilot", "Security Copilot raised the alert."),
    Member(
        "microsoftSentinel",
        "Microsoft Sentinel",
        "A Microsoft Sentinel detection not otherwise classified.",
        _SENTINEL,
        "only Microsoft Sentinel has it",
    ),
)


def _a(alias: str, canonical: str, confidence: str, source: str) -> Alias:
    return Alias(alias, canonical, confidence, source)


# Many hunting display names ("Custom TI", "Automated investigation", "Microsoft Defender for
# Identity") normalise to a member name already; they are listed anyway so the table documents them.

DETECTION_ALIASES: Tuple[Alias, ...] = (
    _a("WindowsDefenderAtp", "microsoftDefenderForEndpoint", "H", "M-QUEUE, X-AHCHG"),
    _a("Windows DefenderATP", "microsoftDefenderForEndpoint", "H", "blog"),
    _a("EDR", "microsoftDefenderForEndpoint", "H", "M-QUEUE, AH"),
    _a("Microsoft Defender for Endpoint", "microsoftDefenderForEndpoint", "H", "D-ALERT"),
    _a("MicrosoftDefenderATP", "microsoftDefenderForEndpoint", "M", "X-LISTI service token"),
    _a("Microsoft Defender ATP", "microsoftDefenderForEndpoint", "M", "X-AHCHG"),
    _a("WindowsDefenderAv", "antivirus", "H", "M-QUEUE, X-AHCHG"),
    _a("Windows DefenderAV", "antivirus", "H", "blog"),
    _a("Antivirus", "antivirus", "H", "M-QUEUE, AH"),
    _a("Microsoft Defender Antivirus", "antivirus", "M", "product name"),
    _a("WindowsDefenderSmartScreen", "smartScreen", "H", "M-QUEUE, X-AHCHG"),
    _a("Windows Defender SmartScreen", "smartScreen", "H", "blog"),
    _a("SmartScreen", "smartScreen", "H", "M-QUEUE, AH"),
    _a("Microsoft Defender SmartScreen", "smartScreen", "H", "D-ALERT"),
    _a("CustomerTI", "customTi", "H", "M-QUEUE, X-AHCHG"),
    _a("Custom TI", "customTi", "H", "M-QUEUE, AH"),
    _a("Custom threat intelligence", "customTi", "H", "D-ALERT"),
    _a("OfficeATP", "microsoftDefenderForOffice365", "H", "M-QUEUE, X-AHCHG"),
    _a("Office 365 ATP", "microsoftDefenderForOffice365", "M", "X-AHCHG"),
    _a("Microsoft Defender for Office 365", "microsoftDefenderForOffice365", "H", "M-QUEUE, AH"),
    _a("AutomatedInvestigation", "automatedInvestigation", "H", "M-QUEUE, X-AHCHG"),
    _a("Automated investigation", "automatedInvestigation", "H", "M-QUEUE, AH"),
    _a("ThreatExperts", "microsoftThreatExperts", "H", "M-QUEUE, X-AHCHG"),
    _a("Microsoft Threat Experts", "microsoftThreatExperts", "H", "X-AHCHG"),
    _a("Microsoft Defender Experts", "microsoftThreatExperts", "H", "M-QUEUE"),
    _a("Defender Experts", "microsoftThreatExperts", "H", "§5.3, systemTags"),
    _a("CustomDetection", "customDetection", "H", "M-QUEUE, X-AHCHG"),
    _a("Custom detection", "customDetection", "H", "M-QUEUE, AH"),
    _a("AzureATP", "microsoftDefenderForIdentity", "H", "X-AHCHG"),
    _a("Azure ATP", "microsoftDefenderForIdentity", "H", "X-AHCHG"),
    _a("Azure Advanced Threat Protection", "microsoftDefenderForIdentity", "M", "product name"),
    _a("MicrosoftDefenderForIdentity", "microsoftDefenderForIdentity", "M", "blog"),
    _a("Microsoft Defender for Identity", "microsoftDefenderForIdentity", "H", "AH"),
    _a("MCAS", "cloudAppSecurity", "H", "X-AHCHG, X-LISTI"),
    _a("Microsoft Cloud App Security", "cloudAppSecurity", "H", "X-AHCHG"),
    _a("MicrosoftCloudAppSecurity", "cloudAppSecurity", "M", "X-LISTI service token"),
    _a("Microsoft Defender for Cloud Apps", "cloudAppSecurity", "H", "AH"),
    _a("MTP", "microsoft365Defender", "H", "M-QUEUE, X-AHCHG"),
    _a("Microsoft Threat Protection", "microsoft365Defender", "M", "X-AHCHG"),
    _a("Microsoft 365 Defender", "microsoft365Defender", "H", "AH"),
    _a("Microsoft365Defender", "microsoft365Defender", "M", "blog"),
    _a("Microsoft Defender XDR", "microsoft365Defender", "H", "M-QUEUE, AH"),
    _a("Defender XDR", "microsoft365Defender", "H", "§5.3"),
    _a("Manual", "manual", "M", "unofficial portal payloads"),
    _a("AAD", "azureAdIdentityProtection", "L", "§5.3"),
    _a("AADIdentityProtection", "azureAdIdentityProtection", "L", "blog"),
    _a("Azure AD Identity Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("Entra ID Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("Microsoft Entra ID Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("IPC", "azureAdIdentityProtection", "L", "legacy Graph provider"),
    _a("AppGPolicy", "appGovernancePolicy", "L", "unofficial portal script"),
    _a("App governance policy", "appGovernancePolicy", "L", "AH"),
    _a("AppGDetection", "appGovernanceDetection", "L", "unofficial portal script"),
    _a("App governance detection", "appGovernanceDetection", "L", "AH"),
    _a("Microsoft Data Loss Prevention", "microsoftDataLossPrevention", "M", "AH"),
    _a("Data Loss Prevention", "microsoftDataLossPrevention", "M", "AH"),
    _a("Purview DLP", "microsoftDataLossPrevention", "M", "D-ALERT"),
    _a("DLP", "microsoftDataLossPrevention", "L", "abbreviation"),
    _a("ThirdPartySensors", "unknown", "M", "M-QUEUE (no Graph member)"),
    _a("Third-party sensors", "unknown", "M", "M-QUEUE (no Graph member)"),
    _a("3rd party TI", "unknown", "M", "X-AHCHG (no Graph member)"),
    _a("Azure Security Center", "microsoftDefenderForCloud", "M", "legacy Graph provider"),
    _a("ASC", "microsoftDefenderForCloud", "M", "legacy Graph provider"),
    _a("Azure Defender", "microsoftDefenderForCloud", "M", "product name"),
    _a("Defender for Cloud", "microsoftDefenderForCloud", "M", "product name"),
    _a("Azure Sentinel", "microsoftSentinel", "M", "legacy Graph provider"),
    _a("Sentinel", "microsoftSentinel", "M", "product name"),
    _a("NRT", "nrtAlerts", "L", "Sentinel rule kind"),
    _a("Scheduled", "scheduledAlerts", "L", "Sentinel rule kind"),
    _a("Insider Risk Management", "microsoftInsiderRiskManagement", "M", "product name"),
    # Short product names without "Microsoft", as the streaming API's Behavior* rows carry them.
    _a("Defender for Endpoint", "microsoftDefenderForEndpoint", "M", "streaming rows (short name)"),
    _a("Defender for Office 365", "microsoftDefenderForOffice365", "M", "streaming rows (short name)"),
    _a("Defender for Identity", "microsoftDefenderForIdentity", "M", "streaming rows (short name)"),
    _a("Defender for Cloud Apps", "cloudAppSecurity", "M", "streaming BehaviorEntities rows"),
    # User and entity behaviour analytics: a behaviour engine, not an alert's detection
    # mechanism; Graph has no member for it (as for third-party sensors).
    _a("UEBA", "unknown", "M", "streaming BehaviorEntities rows (no Graph member)"),
)

SERVICE_ALIASES: Tuple[Alias, ...] = (
    _a("MicrosoftDefenderATP", "microsoftDefenderForEndpoint", "H", "X-LISTI"),
    _a("Microsoft Defender ATP", "microsoftDefenderForEndpoint", "H", "X-AHCHG, D-MIGR"),
    _a("Windows Defender ATP", "microsoftDefenderForEndpoint", "M", "former product name"),
    _a("MDATP", "microsoftDefenderForEndpoint", "M", "abbreviation"),
    _a("MDE", "microsoftDefenderForEndpoint", "M", "abbreviation"),
    _a("MicrosoftDefenderForEndpoint", "microsoftDefenderForEndpoint", "M", "blog"),
    _a("OfficeATP", "microsoftDefenderForOffice365", "H", "X-LISTI"),
    _a("Office 365 ATP", "microsoftDefenderForOffice365", "H", "X-AHCHG, legacy Graph provider"),
    _a("MDO", "microsoftDefenderForOffice365", "M", "abbreviation"),
    _a("MicrosoftDefenderForOffice365", "microsoftDefenderForOffice365", "M", "blog"),
    _a("MicrosoftCloudAppSecurity", "microsoftDefenderForCloudApps", "H", "X-LISTI"),
    _a("Microsoft Cloud App Security", "microsoftDefenderForCloudApps", "H", "product name"),
    _a("MCAS", "microsoftDefenderForCloudApps", "H", "legacy Graph provider"),
    _a("MDCA", "microsoftDefenderForCloudApps", "M", "abbreviation"),
    _a("AzureATP", "microsoftDefenderForIdentity", "H", "X-AHCHG token"),
    _a("Azure ATP", "microsoftDefenderForIdentity", "H", "X-AHCHG, legacy Graph provider"),
    _a("Azure Advanced Threat Protection", "microsoftDefenderForIdentity", "M", "legacy Graph provider"),
    _a("MicrosoftDefenderForIdentity", "microsoftDefenderForIdentity", "M", "blog"),
    _a("MDI", "microsoftDefenderForIdentity", "M", "abbreviation"),
    _a("MTP", "microsoft365Defender", "M", "X-AHCHG"),
    _a("Microsoft Threat Protection", "microsoft365Defender", "M", "X-AHCHG"),
    _a("Microsoft 365 Defender", "microsoft365Defender", "H", "AH"),
    _a("Microsoft365Defender", "microsoft365Defender", "M", "blog"),
    _a("Microsoft Defender XDR", "microsoft365Defender", "H", "AH"),
    _a("Defender XDR", "microsoft365Defender", "M", "product name"),
    _a("AADIdentityProtection", "azureAdIdentityProtection", "L", "blog"),
    _a("Azure AD Identity Protection", "azureAdIdentityProtection", "L", "legacy Graph provider"),
    _a("Azure Active Directory Identity Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("IPC", "azureAdIdentityProtection", "L", "legacy Graph provider"),
    _a("AAD", "azureAdIdentityProtection", "L", "§5.3"),
    _a("Entra ID Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("Microsoft Entra ID Protection", "azureAdIdentityProtection", "L", "product name"),
    _a("App governance", "microsoftAppGovernance", "L", "AH"),
    _a("AppG", "microsoftAppGovernance", "L", "unofficial portal script"),
    _a("Microsoft Data Loss Prevention", "dataLossPrevention", "L", "AH"),
    _a("Microsoft Purview Data Loss Prevention", "dataLossPrevention", "L", "product name"),
    _a("DLP", "dataLossPrevention", "L", "abbreviation"),
    _a("Azure Security Center", "microsoftDefenderForCloud", "M", "legacy Graph provider"),
    _a("ASC", "microsoftDefenderForCloud", "M", "legacy Graph provider"),
    _a("Azure Defender", "microsoftDefenderForCloud", "M", "product name"),
    _a("Defender for Cloud", "microsoftDefenderForCloud", "M", "product name"),
    _a("Azure Sentinel", "microsoftSentinel", "M", "legacy Graph provider"),
    _a("Sentinel", "microsoftSentinel", "M", "product name"),
    _a("Insider Risk Management", "microsoftInsiderRiskManagement", "M", "product name"),
    _a("Microsoft Insider Risk Management", "microsoftInsiderRiskManagement", "M", "product name"),
    # Short product names without "Microsoft", as the streaming API's Behavior* rows carry them.
    _a("Defender for Endpoint", "microsoftDefenderForEndpoint", "M", "streaming rows (short name)"),
    _a("Defender for Office 365", "microsoftDefenderForOffice365", "M", "streaming rows (short name)"),
    _a("Defender for Identity", "microsoftDefenderForIdentity", "M", "streaming rows (short name)"),
    _a("Defender for Cloud Apps", "microsoftDefenderForCloudApps", "M", "streaming BehaviorEntities rows"),
)

SERVICE_MEMBERS: Tuple[str, ...] = tuple(m.value for m in _SERVICES)
DETECTION_MEMBERS: Tuple[str, ...] = tuple(m.value for m in _DETECTIONS)
SERVICES: Mapping[str, Member] = {m.value: m for m in _SERVICES}
DETECTIONS: Mapping[str, Member] = {m.value: m for m in _DETECTIONS}

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise(value: str) -> str:
    """Key used for matching: case-folded, without spaces, underscores or hyphens."""
    return _SEPARATORS.sub("", value).casefold()


def _build_index(
    members: Tuple[Member, ...], aliases: Tuple[Alias, ...], vocabulary: str
) -> Dict[str, Tuple[str, str]]:
    """normalised key -> (canonical, via). Members win over aliases; a collision is a table bug."""
    index: Dict[str, Tuple[str, str]] = {}

    def put(key: str, canonical: str, via: str) -> None:
        previous = index.get(key)
        if previous is not None and previous[0] != canonical:
            raise ValueError(f"{vocabulary} key {key!r} maps to {previous[0]} and {canonical}")
        if previous is None:
            index[key] = (canonical, via)

    for member in members:
        put(normalise(member.value), member.value, "canonical")
    known = {m.value for m in members}
    for alias in aliases:
        if alias.canonical not in known:
            raise ValueError(f"{vocabulary} alias {alias.alias!r} names no member {alias.canonical!r}")
        put(normalise(alias.alias), alias.canonical, "alias")
    for member in members:
        put(normalise(member.label), member.value, "alias")
    return index


_SERVICE_INDEX = _build_index(_SERVICES, SERVICE_ALIASES, SERVICE)
_DETECTION_INDEX = _build_index(_DETECTIONS, DETECTION_ALIASES, DETECTION)
_ABSENT = Resolution("", "", "", False, "absent")


def _resolve(value: Optional[str], index: Mapping[str, Tuple[str, str]], members: Mapping[str, Member]) -> Resolution:
    if value is None:
        return _ABSENT
    raw = str(value)
    stripped = raw.strip()
    if not stripped:
        return _ABSENT
    hit = members.get(stripped)
    if hit is not None:
        return Resolution(raw, hit.value, hit.label, True, "canonical")
    found = index.get(normalise(stripped))
    if found is None:
        return Resolution(raw, stripped, "", False, "unknown")
    canonical, via = found
    return Resolution(raw, canonical, members[canonical].label, True, via)


def canonical_service(value: Optional[str]) -> Resolution:
    """Resolve a serviceSource value from any vocabulary onto its Graph member."""
    return _resolve(value, _SERVICE_INDEX, SERVICES)


def canonical_detection(value: Optional[str]) -> Resolution:
    """Resolve a detectionSource value from any vocabulary onto its Graph member."""
    return _resolve(value, _DETECTION_INDEX, DETECTIONS)


def infer_service(detection_canonical: Optional[str]) -> Optional[str]:
    """The one service that owns this detection mechanism, or None when it is shared or unknown."""
    if not detection_canonical:
        return None
    member = DETECTIONS.get(detection_canonical)
    return member.service if member is not None else None


def inferred_service(detection_canonical: Optional[str]) -> Resolution:
    """``infer_service`` as a Resolution (``via="inferred"``), or an absent one."""
    service = infer_service(detection_canonical)
    if service is None:
        return _ABSENT
    return Resolution("", service, SERVICES[service].label, True, "inferred")


def label(value: Optional[str], vocabulary: str = SERVICE) -> str:
    """Display label of a canonical member (or of any alias); empty when unknown."""
    resolve = canonical_service if vocabulary == SERVICE else canonical_detection
    return resolve(value).label
