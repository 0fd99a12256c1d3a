"""The simulator's write side: ``PATCH /security/incidents/{id}``, ``PATCH /security/alerts_v2/{id}``
and ``POST .../{id}/comments``, with Graph's validation. Kept apart from the read side (server.py
only routes here).

What Graph documents and this enforces (incident/alert "Update" and "Create comment" pages,
v1.0 CSDL; the copy of the team's Graph reference in tests/fixtures/reference/graph-security-api.md, §1-§3):

* Permission: ``SecurityIncident.ReadWrite.All`` / ``SecurityAlert.ReadWrite.All``; a read role
  alone gets 403 with the Missing-application-roles message the read side uses.
* Updatable properties: incident ``assignedTo``, ``classification``, ``determination``, ``status``,
  ``customTags`` (and ``description``, ``resolvingComment``, ``summary``); alert ``assignedTo``,
  ``classification``, ``determination``, ``status``. Any other property of the resource is read-only
  (400); a name the type does not have is 400 too.
* Enum members are matched exactly as the CSDL spells them (OData's JSON reader is case-sensitive);
  an unknown member is 400 with OData's conversion message. ``status`` may not be set to
  ``redirected`` or ``awaitingAction`` (Defender sets those).
* ``customTags``: a JSON array of strings; PATCH replaces the whole list.
* A PATCH answers 200 with the updated entity; a comment answers 200 with the item's comments.
* An unknown id is 404. 429 and other faults come from the fault plan (faults.py) as for reads.

Each accepted write adds a new version of the item (``lastUpdateDateTime`` moves forward, the
simulator clock with it when needed), so a later listing or ``GET`` shows it. ``sim.writes`` keeps
every accepted write's body, for tests to assert what the add-on sent.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .tenant import TPS
from .timeutil import format_ticks

if TYPE_CHECKING:
    from .server import GraphSimulator

COMMENTS_PATH = re.compile(r"^/v1\.0/security/(alerts_v2|incidents)/([^/]+)/comments/?$")
WRITE_ROLES = {"incidents": "SecurityIncident.ReadWrite.All", "alerts_v2": "SecurityAlert.ReadWrite.All"}
TYPE_NAMES = {"incidents": "microsoft.graph.security.incident", "alerts_v2": "microsoft.graph.security.alert"}
CLASSIFICATION = ("unknown", "falsePositive", "truePositive", "informationalExpectedActivity", "unknownFutureValue")
DETERMINATION = (
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "notMalicious",
    "notEnoughDataToValidate",
    "confirmedActivity",
    "lineOfBusinessApplication",
    "unknownFutureValue",
)
INCIDENT_STATUS = ("active", "resolved", "inProgress", "redirected", "unknownFutureValue", "awaitingAction")
ALERT_STATUS = ("unknown", "new", "inProgress", "resolved", "unknownFutureValue")
SETTABLE_STATUS = {"incidents": ("active", "resolved", "inProgress"), "alerts_v2": ("new", "inProgress", "resolved")}
ENUM_TYPES = {
    "classification": ("microsoft.graph.security.alertClassification", CLASSIFICATION),
    "determination": ("microsoft.graph.security.alertDetermination", DETERMINATION),
}
UPDATABLE = {
    "incidents": (
        "assignedTo",
        "classification",
        "determination",
        "status",
        "customTags",
        "description",
        "summary",
        "resolvingComment",
    ),
    "alerts_v2": ("assignedTo", "classification", "determination", "status"),
}
# Properties of the types (CSDL) a PATCH may name but not change.
READ_ONLY = {
    "incidents": (
        "id",
        "displayName",
        "severity",
        "createdDateTime",
        "lastUpdateDateTime",
        "incidentWebUrl",
        "redirectIncidentId",
        "tenantId",
        "systemTags",
        "comments",
        "lastModifiedBy",
        "priorityScore",
        "alerts",
    ),
    "alerts_v2": (
        "id",
        "providerAlertId",
        "incidentId",
        "severity",
        "serviceSource",
        "detectionSource",
        "productName",
        "detectorId",
        "tenantId",
        "title",
        "description",
        "recommendedActions",
        "category",
        "categories",
        "alertWebUrl",
        "incidentWebUrl",
        "actorDisplayName",
        "threatDisplayName",
        "threatFamilyName",
        "mitreTechniques",
        "createdDateTime",
        "lastUpdateDateTime",
        "firstActivityDateTime",
        "lastActivityDateTime",
        "resolvedDateTime",
        "comments",
        "evidence",
        "systemTags",
    ),
}
APP_DISPLAY_NAME = "TA-defender-lineage test app"


class WriteRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_write(method: str, path: str) -> bool:
    return (method == "POST" and COMMENTS_PATH.match(path) is not None) or method == "PATCH"


def handle_write(
    sim: GraphSimulator,
    method: str,
    resource: str,
    item_id: Optional[str],
    path: str,
    raw: bytes,
    customer: str = "",
) -> bytes:
    """The 200 body of an accepted write; raises WriteRefused with Graph's status and message.

    ``customer``: the tenant of the request's token ("" for the home tenant). The write needs the role
    consented THERE and changes that tenant's data only (``sim.data_of``): an id of another tenant is
    404, as Graph answers for an id it does not find in the token's tenant."""
    required = WRITE_ROLES[resource]
    roles = (sim.customer_tenants.get(customer) or set()) if customer else sim.app_roles
    if required not in roles:
        granted = ", ".join(sorted(roles)) or "none"
        raise WriteRefused(
            403,
            "Forbidden",
            f"Missing application roles. API required roles: {required}. API granted roles: {granted}.",
        )
    if not item_id:
        raise WriteRefused(405, "BadRequest", "Specified HTTP method is not allowed for the request uri.")
    data = sim.data_of(customer)
    collection = data.alerts if resource == "alerts_v2" else data.incidents
    found = collection.latest(item_id, sim._clock)
    if found is None:
        raise WriteRefused(404, "NotFound", f"No {resource[:-1]} found with id '{item_id}'.")
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise WriteRefused(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise WriteRefused(400, "BadRequest", "The request body must be a JSON object.")
    item = found.as_dict()
    if method == "PATCH":
        _validate_patch(resource, body)
        item.update(body)
        answer: Dict[str, Any] = {}
    else:
        comment = body.get("comment")
        if set(body) != {"comment"} or not isinstance(comment, str) or not comment:
            raise WriteRefused(400, "BadRequest", "A comment needs exactly one non-empty string property 'comment'.")
        comments: List[Dict[str, Any]] = list(item.get("comments") or [])
        comments.append({"comment": comment, "createdByDisplayName": APP_DISPLAY_NAME, "createdDateTime": ""})
        item["comments"] = comments
        answer = {}
    ticks = max(found.ticks + TPS // 1000, sim._clock)
    if ticks > sim._clock:
        sim._clock = ticks
    stamp = format_ticks(ticks)
    item["lastUpdateDateTime"] = stamp
    if method == "POST":
        item["comments"][-1]["createdDateTime"] = stamp
    data.add_version(resource, item)
    sim.writes.append(
        {"method": method, "resource": resource, "id": item_id, "path": path, "body": body, "tenant": customer}
    )
    context = f"{sim.base_url}/v1.0/$metadata#security/{resource}"
    if method == "PATCH":
        answer = {"@odata.context": f"{context}/$entity", **item}
    else:
        answer = {"@odata.context": f"{context}('{item_id}')/comments", "value": item["comments"]}
    return json.dumps(answer).encode("utf-8")


def _validate_patch(resource: str, body: Dict[str, Any]) -> None:
    type_name = TYPE_NAMES[resource]
    for name, value in body.items():
        if name in READ_ONLY[resource]:
            raise WriteRefused(400, "BadRequest", f"The property '{name}' is read-only and cannot be updated.")
        if name not in UPDATABLE[resource]:
            raise WriteRefused(
                400,
                "BadRequest",
                f"The property '{name}' does not exist on type '{type_name}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type.",
            )
        if name == "status":
            statuses: Tuple[str, ...] = INCIDENT_STATUS if resource == "incidents" else ALERT_STATUS
            enum_type = "incidentStatus" if resource == "incidents" else "alertStatus"
            _check_member(value, statuses, f"microsoft.graph.security.{enum_type}")
            if value not in SETTABLE_STATUS[resource]:
                raise WriteRefused(400, "BadRequest", f"The status '{value}' cannot be set through the API.")
        elif name in ENUM_TYPES:
            enum_name, members = ENUM_TYPES[name]
            _check_member(value, members, enum_name)
        elif name == "customTags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise WriteRefused(400, "BadRequest", "customTags must be a collection of strings.")
        elif value is not None and not isinstance(value, str):
            raise WriteRefused(
                400, "BadRequest", f"Cannot convert the value of '{name}' to the expected type 'Edm.String'."
            )


def _check_member(value: Any, members: tuple, enum_type: str) -> None:
    # OData's JSON reader matches enum members exactly as the CSDL spells them.
    if not isinstance(value, str) or value not in members:
        raise WriteRefused(
            400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{enum_type}'."
        )
