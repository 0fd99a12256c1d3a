"""Response actions: update a Defender incident or alert through Graph, and say exactly what happened.

Plain Python; the alert-action adapter (``defender_lineage_actions``) reads the payload, picks the
account and writes the audit events. What happens for one run:

1. **Validate everything first.** :func:`parse_change` checks every parameter (Graph enum members,
   case-insensitively, returned in Graph's camelCase; a UPN for ``assigned_to``; tag length and
   characters; comment length) and :func:`plan_targets` every target id and tenant id. A bad value
   refuses the whole run before any request is sent.
2. **One target per result row, once.** Rows naming the same (tenant, id) are acted on once; at most
   ``max_targets`` distinct targets per run (the rest are skipped and the run says how many).
3. **Per target** (:func:`act`): read the current state (``GET``); a merged incident
   (``status = redirected``) is followed to its survivor through ``redirectIncidentId``; only the
   properties whose value differs are sent (``PATCH``, which replaces ``customTags``, so new tags are
   merged into the current list first); a comment is ``POST .../comments``. ``dry_run`` stops after
   the read and reports what would change.
4. **One audit record per attempt** (:class:`Attempt`): target, tenant, requested change, the values
   before it, outcome, HTTP status and Graph's request id. Never a token or secret.

Graph facts (Microsoft Graph v1.0 CSDL and the incident/alert resource pages): incidentStatus
members active, resolved, inProgress (``redirected`` and ``awaitingAction`` are set by Defender
only); alertStatus new, inProgress, resolved; alertClassification unknown, falsePositive,
truePositive, informationalExpectedActivity; alertDetermination as in ``DETERMINATIONS``. The
portal-era spellings (``compromisedUser``, ``clean``, ``insufficientData``, ``confirmedUserActivity``,
``benignPositive``) are accepted and sent as the CSDL member.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .errors import DefenderLineageError, GraphError

UNCHANGED = ("", "unchanged")
DEFAULT_MAX_TARGETS = 20
MAX_TARGETS_CEILING = 1000
MAX_TAG_CHARS = 100
MAX_TAGS_ADDED = 20
MAX_COMMENT_CHARS = 10000
MAX_UPN_CHARS = 256
MAX_REDIRECTS = 16
PREFER_ALL_ENUMS = "include-unknown-enum-members"

CLASSIFICATIONS = ("unknown", "falsePositive", "truePositive", "informationalExpectedActivity")
DETERMINATIONS = (
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
)
# Spellings from the prose of Microsoft's pages and the portal, mapped to the CSDL member Graph takes.
ALIASES = {
    "classification": {"benignpositive": "informationalExpectedActivity"},
    "determination": {
        "compromiseduser": "compromisedAccount",
        "clean": "notMalicious",
        "insufficientdata": "notEnoughDataToValidate",
        "confirmeduseractivity": "confirmedActivity",
    },
}

_UPN = re.compile(
    r"^[^@\s\"<>,;:\\()\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
# Letters and digits of any script, space and a few separators analysts use in tags.
_TAG = re.compile(r"^[\w .:@#/+-]+$", re.UNICODE)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INCIDENT_ID = re.compile(r"^[0-9]{1,20}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")


@dataclass(frozen=True)
class Kind:
    """What one action acts on."""

    action: str  # the alert action's name
    target_type: str  # "incident" or "alert"
    resource: str  # Graph collection under /security
    id_field: str  # the result field / parameter naming the target
    statuses: Tuple[str, ...]
    write_permission: str
    tags: bool  # whether ``tags_add`` applies (incidents have customTags, alerts do not)
    id_pattern: re.Pattern[str]


INCIDENT = Kind(
    "defender_update_incident",
    "incident",
    "incidents",
    "incident_id",
    ("active", "inProgress", "resolved"),
    "SecurityIncident.ReadWrite.All",
    True,
    _INCIDENT_ID,
)
ALERT = Kind(
    "defender_update_alert",
    "alert",
    "alerts_v2",
    "alert_id",
    ("new", "inProgress", "resolved"),
    "SecurityAlert.ReadWrite.All",
    False,
    _ALERT_ID,
)

# Action parameter -> Graph property, in the order the audit lists them.
PROPERTY_OF_PARAM = (
    ("status", "status"),
    ("classification", "classification"),
    ("determination", "determination"),
    ("assigned_to", "assignedTo"),
)


class ActionInputError(DefenderLineageError):
    """A parameter or a result row holds a value this action refuses; names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Change:
    """A validated change: Graph property -> value (camelCase members), tags to add, a comment."""

    properties: Tuple[Tuple[str, str], ...] = ()
    tags_add: Tuple[str, ...] = ()
    comment: str = ""

    def empty(self) -> bool:
        return not self.properties and not self.tags_add and not self.comment

    def requested(self) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(self.properties)
        if self.tags_add:
            out["tags_add"] = list(self.tags_add)
        if self.comment:
            out["comment"] = self.comment
        return out


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _member(name: str, value: str, members: Sequence[str]) -> str:
    """``value`` as the Graph member it names, case-insensitively (aliases included)."""
    lowered = value.lower()
    for member in members:
        if member.lower() == lowered:
            return member
    alias = ALIASES.get(name, {}).get(lowered)
    if alias is not None:
        return alias
    raise ActionInputError(name, f"'{value}' is not one of {', '.join(members)} (or 'unchanged')")


def parse_upn(value: str) -> str:
    if len(value) > MAX_UPN_CHARS or not _UPN.match(value):
        raise ActionInputError(
            "assigned_to", f"'{value[:80]}' is not a user principal name (name@domain, e.g. analyst@contoso.com)"
        )
    return value


def parse_tags(value: str) -> Tuple[str, ...]:
    """Comma-separated tags, each 1-100 characters of letters, digits, space and ``. : @ # / + - _``;
    duplicates (ignoring case) kept once, in order."""
    tags: List[str] = []
    seen = set()
    for part in value.split(","):
        tag = part.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise ActionInputError("tags_add", f"the tag '{tag[:40]}...' is longer than {MAX_TAG_CHARS} characters")
        if not _TAG.match(tag):
            raise ActionInputError(
                "tags_add", f"the tag '{tag}' has a character other than letters, digits, space and . : @ # / + - _"
            )
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    if len(tags) > MAX_TAGS_ADDED:
        raise ActionInputError("tags_add", f"{len(tags)} tags: at most {MAX_TAGS_ADDED} per action")
    return tuple(tags)


def parse_change(kind: Kind, params: Mapping[str, Any]) -> Change:
    """The change the action's parameters ask for; raises ActionInputError naming the first bad one.

    Every parameter may be empty or ``unchanged`` (case-insensitive): leave that property as it is.
    """
    properties: List[Tuple[str, str]] = []
    for param, graph_name in PROPERTY_OF_PARAM:
        value = _text(params.get(param))
        if value.lower() in UNCHANGED:
            continue
        if param == "status":
            properties.append((graph_name, _member(param, value, kind.statuses)))
        elif param == "classification":
            properties.append((graph_name, _member(param, value, CLASSIFICATIONS)))
        elif param == "determination":
            properties.append((graph_name, _member(param, value, DETERMINATIONS)))
        else:
            properties.append((graph_name, parse_upn(value)))
    tags_text = _text(params.get("tags_add"))
    tags: Tuple[str, ...] = ()
    if tags_text.lower() not in UNCHANGED:
        if not kind.tags:
            raise ActionInputError("tags_add", f"{kind.target_type}s have no custom tags in Graph")
        tags = parse_tags(tags_text)
    comment = _text(params.get("comment"))
    if comment.lower() in UNCHANGED:
        comment = ""
    if len(comment) > MAX_COMMENT_CHARS:
        raise ActionInputError("comment", f"{len(comment)} characters: at most {MAX_COMMENT_CHARS}")
    change = Change(tuple(properties), tags, comment)
    if change.empty():
        raise ActionInputError(
            "status",
            "nothing to change: set at least one of status, classification, determination, assigned_to, "
            + ("tags_add, " if kind.tags else "")
            + "comment",
        )
    return change


def parse_max_targets(value: Any) -> int:
    text = _text(value)
    if not text:
        return DEFAULT_MAX_TARGETS
    try:
        number = int(text)
    except ValueError:
        raise ActionInputError("max_targets", f"'{text}' is not a whole number") from None
    if not 1 <= number <= MAX_TARGETS_CEILING:
        raise ActionInputError("max_targets", f"{number} is outside 1-{MAX_TARGETS_CEILING}")
    return number


def is_true(value: Any) -> bool:
    return _text(value).lower() in ("1", "true", "yes", "t", "y", "on")


# --- targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    tenant_id: str
    target_id: str
    rows: Tuple[int, ...]  # result rows naming it (0-based)


@dataclass
class TargetPlan:
    targets: List[Target]
    skipped_over_cap: int = 0
    duplicate_rows: int = 0


def plan_targets(
    kind: Kind,
    rows: Iterable[Mapping[str, Any]],
    params: Mapping[str, Any],
    default_tenant: Optional[str],
    max_targets: int,
) -> TargetPlan:
    """One target per result row, each distinct (tenant, id) once, at most ``max_targets``.

    A row names its target by its own ``incident_id`` / ``alert_id`` and ``tenant_id`` fields. The
    parameters of the same name are used only when no row has the field: splunkd substitutes
    ``$result.x$`` tokens from the FIRST result only, so taking a parameter for every row would act
    on the first row's target once per row. With several rows and no id field the run is refused.
    ``default_tenant``: the tenant when neither the rows nor the parameter name one (the only
    configured account's).
    """
    listed = [dict(row) for row in rows]
    id_field = kind.id_field
    rows_have_id = any(_text(row.get(id_field)) for row in listed)
    rows_have_tenant = any(_text(row.get("tenant_id")) for row in listed)
    if not rows_have_id:
        literal = _text(params.get(id_field))
        if not literal:
            raise ActionInputError(id_field, f"no result has an {id_field} field and the parameter is empty")
        if len(listed) > 1:
            raise ActionInputError(
                id_field,
                f"{len(listed)} results but none has an {id_field} field: rename the field holding the "
                f"{kind.target_type} id to {id_field} (| rename ... AS {id_field})",
            )
        listed = [{**(listed[0] if listed else {}), id_field: literal}]  # the row's tenant_id still counts
    seen: Dict[Tuple[str, str], List[int]] = {}
    order: List[Tuple[str, str]] = []
    for number, row in enumerate(listed):
        target_id = _text(row.get(id_field))
        if not target_id:
            raise ActionInputError(id_field, f"result {number + 1} has no {id_field}")
        if not kind.id_pattern.match(target_id):
            raise ActionInputError(
                id_field, f"result {number + 1}: '{target_id[:80]}' is not a Graph {kind.target_type} id"
            )
        tenant = _text(row.get("tenant_id")) if rows_have_tenant else _text(params.get("tenant_id"))
        tenant = tenant or _text(default_tenant)
        if not tenant:
            raise ActionInputError(
                "tenant_id", f"result {number + 1} names no tenant_id and several accounts are configured: set account"
            )
        if not _GUID.match(tenant):
            raise ActionInputError("tenant_id", f"result {number + 1}: '{tenant[:80]}' is not a tenant id (a GUID)")
        key = (tenant.lower(), target_id.lower())
        if key not in seen:
            seen[key] = []
            order.append(key)
        seen[key].append(number)
    targets = [Target(key[0], _original_id(listed, seen[key][0], id_field), tuple(seen[key])) for key in order]
    return TargetPlan(
        targets=targets[:max_targets],
        skipped_over_cap=max(0, len(targets) - max_targets),
        duplicate_rows=len(listed) - len(targets),
    )


def _original_id(rows: Sequence[Mapping[str, Any]], number: int, id_field: str) -> str:
    # Alert ids are opaque: send the spelling the first row used (dedup is still case-insensitive).
    return _text(rows[number].get(id_field))


# --- acting ----------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    body: Any
    request_id: str


# (method, path under /v1.0/security, json body or None) -> the answer. Raises DefenderLineageError
# when the transport gives up (retries exhausted, deadline, token refused).
Send = Callable[[str, str, Optional[Dict[str, Any]]], HttpAnswer]


@dataclass
class Attempt:
    """One attempt on one target: the audit record, as the audit event shows it."""

    kind: Kind
    tenant_id: str
    target_id: str
    requested: Dict[str, Any]
    dry_run: bool
    acted_on_id: str = ""
    merged_from: List[str] = field(default_factory=list)
    before: Dict[str, Any] = field(default_factory=dict)
    changed: Dict[str, Any] = field(default_factory=dict)
    comment_added: bool = False
    outcome: str = ""  # updated, unchanged, dry_run, failed, partial, refused
    http_status: int = 0
    graph_request_id: str = ""
    message: str = ""
    after: Optional[Dict[str, Any]] = None  # Graph's answer to the PATCH (not audited: feeds the store)

    def record(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "response_action": self.kind.action,
            "outcome": self.outcome,
            "dry_run": self.dry_run,
            "target_type": self.kind.target_type,
            "target_id": self.target_id,
            "acted_on_id": self.acted_on_id or self.target_id,
            "tenant_id": self.tenant_id,
            "requested": self.requested,
            "before": self.before,
            "changed": self.changed,
            "comment_added": self.comment_added,
            "http_status": self.http_status,
            "graph_request_id": self.graph_request_id,
            "message": self.message,
        }
        if self.merged_from:
            out["merged_from"] = self.merged_from
        return out


def act(kind: Kind, target: Target, change: Change, send: Send, dry_run: bool) -> Attempt:
    """Read, compare, write: one target. Never raises for Graph's answers; the Attempt says."""
    attempt = Attempt(kind, target.tenant_id, target.target_id, change.requested(), dry_run)
    try:
        _act(kind, target, change, send, attempt)
    except DefenderLineageError as exc:
        attempt.outcome = "partial" if attempt.changed and attempt.outcome != "failed" else "failed"
        attempt.http_status = getattr(exc, "status", 0) or attempt.http_status
        attempt.message = _prefix_partial(attempt, str(exc))
    return attempt


def _prefix_partial(attempt: Attempt, message: str) -> str:
    if attempt.outcome == "partial":
        return f"the properties were updated but adding the comment failed: {message}"
    return message


def _act(kind: Kind, target: Target, change: Change, send: Send, attempt: Attempt) -> None:
    current_id = target.target_id
    current = _read(kind, target, current_id, send, attempt)
    # A merged incident: act on the incident it was merged into (Graph's redirectIncidentId).
    while (
        kind is INCIDENT and _text(current.get("status")) == "redirected" and _text(current.get("redirectIncidentId"))
    ):
        if len(attempt.merged_from) >= MAX_REDIRECTS or _text(current.get("redirectIncidentId")) in attempt.merged_from:
            raise DefenderLineageError(
                f"incident {target.target_id}: the merge chain through {', '.join(attempt.merged_from)} does not end"
            )
        attempt.merged_from.append(current_id)
        current_id = _text(current.get("redirectIncidentId"))
        current = _read(kind, target, current_id, send, attempt)
    attempt.acted_on_id = current_id
    audited = [name for name, _ in change.properties] + (["customTags"] if change.tags_add else [])
    attempt.before = {name: current.get(name) for name in audited}
    patch = differences(current, change)
    if attempt.dry_run:
        attempt.changed = dict(patch)  # what it would change
        attempt.outcome = "dry_run"
        attempt.message = _summary("would change", patch, change)
        return
    path = f"{kind.resource}/{current_id}"
    if patch:
        answer = send("PATCH", path, patch)
        _note(attempt, answer)
        if answer.status != 200:
            raise _failure(kind, target, current_id, answer, "PATCH")
        attempt.changed = dict(patch)
        attempt.after = answer.body if isinstance(answer.body, dict) else None
    if change.comment:
        answer = send("POST", f"{path}/comments", {"comment": change.comment})
        _note(attempt, answer)
        if answer.status not in (200, 201):
            if patch:
                attempt.outcome = "partial"
            raise _failure(kind, target, current_id, answer, "POST comments")
        attempt.comment_added = True
    if not patch and not change.comment:
        attempt.outcome = "unchanged"
        attempt.message = "every requested value is already set; nothing sent"
        return
    attempt.outcome = "updated"
    attempt.message = _summary("changed", patch, change)


def _read(kind: Kind, target: Target, item_id: str, send: Send, attempt: Attempt) -> Dict[str, Any]:
    answer = send("GET", f"{kind.resource}/{item_id}", None)
    _note(attempt, answer)
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise _failure(kind, target, item_id, answer, "GET")
    return answer.body


def _note(attempt: Attempt, answer: HttpAnswer) -> None:
    attempt.http_status = answer.status
    attempt.graph_request_id = answer.request_id or attempt.graph_request_id


def differences(current: Mapping[str, Any], change: Change) -> Dict[str, Any]:
    """The PATCH body: only properties whose value differs (enum members compared case-insensitively);
    ``customTags`` = current tags + the new ones (PATCH replaces the list), when any is new."""
    patch: Dict[str, Any] = {}
    for name, value in change.properties:
        if _text(current.get(name)).lower() != value.lower():
            patch[name] = value
    if change.tags_add:
        existing = [str(t) for t in (current.get("customTags") or []) if isinstance(t, str)]
        known = {t.lower() for t in existing}
        added = [t for t in change.tags_add if t.lower() not in known]
        if added:
            patch["customTags"] = existing + added
    return patch


def _summary(verb: str, patch: Mapping[str, Any], change: Change) -> str:
    parts = [f"{k}={json.dumps(v)}" for k, v in patch.items()]
    if change.comment:
        parts.append("a comment")
    return f"{verb} " + (", ".join(parts) if parts else "nothing (every value already set)")


def _graph_message(body: Any) -> Tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code, message = _text(error.get("code")), _text(error.get("message"))
    return code, (message if len(message) <= 300 else message[:297] + "...")


def _failure(kind: Kind, target: Target, item_id: str, answer: HttpAnswer, what: str) -> GraphError:
    code, message = _graph_message(answer.body)
    said = f" Graph said: {code}: {message}" if code or message else ""
    if answer.status == 403:
        text = (
            f"Graph refused {what} on {kind.target_type} {item_id} with HTTP 403: the app registration needs the "
            f"application permission {kind.write_permission} (Microsoft Graph), and an administrator must grant "
            f"admin consent for it in tenant {target.tenant_id}.{said}"
        )
    elif answer.status == 404:
        text = (
            f"{kind.target_type} {item_id} is unknown in tenant {target.tenant_id} "
            f"(Graph answered {what} with 404).{said}"
        )
    elif answer.status == 400:
        text = f"Graph refused the {what} on {kind.target_type} {item_id} as invalid (HTTP 400).{said}"
    else:
        text = f"Graph answered {what} on {kind.target_type} {item_id} with HTTP {answer.status}.{said}"
    return GraphError(text, status=answer.status, code=code, resource=kind.resource)


def new_client_request_id() -> str:
    return str(uuid.uuid4())
