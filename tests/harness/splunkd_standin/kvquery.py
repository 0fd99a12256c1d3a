"""KV store query language, as the splunkd KV store REST API evaluates it (a MongoDB subset).

Supported: field equality (an array field matches when it contains the value), dotted paths,
``$and``/``$or``/``$nor``, and the operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists
$regex $not``. Anything else raises :class:`QueryError` (splunkd answers 400).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

Doc = Dict[str, Any]

_MISSING = object()


class QueryError(ValueError):
    """The query is not valid KV store query JSON (splunkd answers 400)."""


def parse_query(text: str) -> Doc:
    if text.strip() == "":
        return {}
    try:
        query = json.loads(text)
    except ValueError as exc:
        raise QueryError(f"Invalid JSON in query: {exc}") from None
    if not isinstance(query, dict):
        raise QueryError("Query must be a JSON object")
    return query


def _get_path(doc: Any, path: str) -> Any:
    current = doc
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


_SETS: Dict[int, Tuple[List[Any], Optional[FrozenSet[str]]]] = {}


def _string_set(target: List[Any]) -> Optional[FrozenSet[str]]:
    """``target`` as a set when it holds only strings; cached for the query being evaluated."""
    cached = _SETS.get(id(target))
    if cached is None or cached[0] is not target:
        strings = frozenset(target) if all(isinstance(t, str) for t in target) else None
        if len(_SETS) > 64:
            _SETS.clear()
        cached = _SETS[id(target)] = (target, strings)
    return cached[1]


def _type_rank(value: Any) -> int:
    # MongoDB's BSON comparison order: null < numbers < strings < objects < arrays < booleans.
    if value is None or value is _MISSING:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, dict):
        return 3
    return 4


def _scalar_eq(a: Any, b: Any) -> bool:
    if a is _MISSING:
        a = None
    if _type_rank(a) != _type_rank(b):
        return False
    return bool(a == b)


def _eq(value: Any, target: Any) -> bool:
    if _scalar_eq(value, target):
        return True
    if isinstance(value, list) and not isinstance(target, list):
        return any(_scalar_eq(v, target) for v in value)
    return False


def _compare(value: Any, target: Any, op: Callable[[Any, Any], bool]) -> bool:
    candidates = value if isinstance(value, list) else [value]
    for candidate in candidates:
        if candidate is _MISSING or _type_rank(candidate) != _type_rank(target):
            continue
        if target is None or isinstance(target, (dict, list)):
            continue
        if op(candidate, target):
            return True
    return False


def _regex(value: Any, pattern: Any, options: str) -> bool:
    if not isinstance(pattern, str):
        raise QueryError("$regex has to be a string")
    flags = 0
    if "i" in options:
        flags |= re.IGNORECASE
    if "m" in options:
        flags |= re.MULTILINE
    if "s" in options:
        flags |= re.DOTALL
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise QueryError(f"Invalid $regex: {exc}") from None
    candidates = value if isinstance(value, list) else [value]
    return any(isinstance(c, str) and compiled.search(c) is not None for c in candidates)


def _match_operators(value: Any, spec: Doc) -> bool:
    options = spec.get("$options", "")
    for op, target in spec.items():
        if op == "$options":
            continue
        if op == "$eq":
            ok = _eq(value, target)
        elif op == "$ne":
            ok = not _eq(value, target)
        elif op == "$gt":
            ok = _compare(value, target, lambda a, b: a > b)
        elif op == "$gte":
            ok = _compare(value, target, lambda a, b: a >= b)
        elif op == "$lt":
            ok = _compare(value, target, lambda a, b: a < b)
        elif op == "$lte":
            ok = _compare(value, target, lambda a, b: a <= b)
        elif op in ("$in", "$nin"):
            if not isinstance(target, list):
                raise QueryError(f"{op} needs an array")
            strings = _string_set(target)
            if isinstance(value, str) and strings is not None:
                found = value in strings  # the loop's answer, without a compare per value per doc
            elif strings is not None and isinstance(value, list):  # an array: any of its strings
                found = any(isinstance(v, str) and v in strings for v in value)
            elif strings is not None:  # missing, null, a number...: equal to no string
                found = False
            else:
                found = any(_eq(value, t) for t in target)
            ok = found if op == "$in" else not found
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(target)
        elif op == "$regex":
            ok = _regex(value, target, options if isinstance(options, str) else "")
        elif op == "$not":
            if not isinstance(target, dict):
                raise QueryError("$not needs an operator object")
            ok = not _match_operators(value, target)
        else:
            raise QueryError(f"Unsupported query operator: {op}")
        if not ok:
            return False
    return True


def matches(doc: Doc, query: Doc) -> bool:
    """Whether ``doc`` satisfies ``query``."""
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(cond, list) or not cond or not all(isinstance(q, dict) for q in cond):
                raise QueryError(f"{key} needs a non-empty array of objects")
            results = (matches(doc, sub) for sub in cond)
            if key == "$and":
                ok = all(results)
            elif key == "$or":
                ok = any(results)
            else:
                ok = not any(results)
            if not ok:
                return False
            continue
        if key.startswith("$"):
            raise QueryError(f"Unsupported top-level operator: {key}")
        value = _get_path(doc, key)
        if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            if not _match_operators(value, cond):
                return False
        elif not _eq(value, cond):
            return False
    return True


def candidate_keys(query: Doc) -> Optional[Set[str]]:
    """The ``_key`` values a query can only match, or None when it is not limited by ``_key``.

    Lets the store fetch by primary key for ``{"_key": k}``, ``{"_key": {"$in": [...]}}`` and
    ``{"$or": [{"_key": k1}, ...]}`` (the full query is still evaluated on what comes back).
    """
    if "_key" in query:
        cond = query["_key"]
        if isinstance(cond, str):
            return {cond}
        if isinstance(cond, dict):
            if isinstance(cond.get("$eq"), str):
                return {cond["$eq"]}
            if isinstance(cond.get("$in"), list):
                return {v for v in cond["$in"] if isinstance(v, str)}
    if "$and" in query and isinstance(query["$and"], list):
        for sub in query["$and"]:
            if isinstance(sub, dict):
                keys = candidate_keys(sub)
                if keys is not None:
                    return keys
    if set(query) == {"$or"} and isinstance(query["$or"], list) and query["$or"]:
        union: Set[str] = set()
        for sub in query["$or"]:
            if not isinstance(sub, dict):
                return None
            keys = candidate_keys(sub)
            if keys is None:
                return None
            union |= keys
        return union
    return None


def parse_sort(text: str) -> List[Tuple[str, int]]:
    """``sort=field1,field2:-1`` (``:1`` ascending is the default)."""
    result: List[Tuple[str, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        field, _, direction = part.partition(":")
        if direction in ("", "1"):
            result.append((field, 1))
        elif direction == "-1":
            result.append((field, -1))
        else:
            raise QueryError(f"Invalid sort direction in {part!r}")
    return result


class _SortKey:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, list):
            value = min(value, key=_SortKey) if value else None
        self.value: Any = None if value is _MISSING else value

    def __lt__(self, other: _SortKey) -> bool:
        ra, rb = _type_rank(self.value), _type_rank(other.value)
        if ra != rb:
            return ra < rb
        if ra in (0, 3):  # null, objects: treat as equal
            return json.dumps(self.value, sort_keys=True) < json.dumps(other.value, sort_keys=True)
        less: bool = self.value < other.value
        return less


def sort_docs(docs: List[Doc], sort: List[Tuple[str, int]]) -> List[Doc]:
    result = list(docs)
    for field, direction in reversed(sort):  # stable sorts, least significant first
        result.sort(key=lambda d: _SortKey(_get_path(d, field)), reverse=direction < 0)
    return result


def project(docs: Iterable[Doc], fields_spec: str) -> List[Doc]:
    """``fields=a,b`` keeps a, b and _key; ``fields=a:0`` drops a; ``_key:0`` drops _key."""
    include: List[str] = []
    exclude: List[str] = []
    for part in fields_spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, flag = part.partition(":")
        if flag in ("", "1"):
            include.append(name)
        elif flag == "0":
            exclude.append(name)
        else:
            raise QueryError(f"Invalid fields entry {part!r}")
    out: List[Doc] = []
    for doc in docs:
        if include:
            keep = {k: v for k, v in doc.items() if k in include}
            if "_key" in doc and "_key" not in exclude:
                keep["_key"] = doc["_key"]
        else:
            keep = dict(doc)
        for name in exclude:
            keep.pop(name, None)
        out.append(keep)
    return out


def candidate_values(query: Doc) -> Optional[List[Tuple[Any, ...]]]:
    """For a query that is a disjunction of ``{field: v}`` / ``{field: {"$in": [...]}}`` terms on
    plain fields, those (field, values) pairs, so the store can pre-select rows the way a real KV
    store uses an accelerated field. None when the query has another shape. The full query is
    still evaluated on what comes back, so this only ever narrows the scan."""
    terms = query["$or"] if set(query) == {"$or"} and isinstance(query["$or"], list) else [query]
    pairs: List[Tuple[Any, ...]] = []
    for term in terms:
        if not isinstance(term, dict) or not term:
            return None
        # A term with several conditions (implicitly and-ed) pre-selects by one of them, an $in
        # list first (the narrower, on this collection's accelerated key fields), as a KV store
        # serves {"incident_key": {"$in": [...]}, "doc_type": ...} from its index on incident_key.
        choices = [pair for pair in map(_preselect, term.items()) if pair is not None]
        if not choices:
            return None
        field, values = max(choices, key=lambda pair: pair[0] == "in")[1]
        # The term's other conditions on strings (equal to one, or at or after one) narrow further,
        # as a compound index (collections.conf accelerated_fields.by_incident_type) does.
        narrower = [narrow for narrow in map(_string_condition, term.items()) if narrow and narrow[0] != field]
        pairs.append((field, values, *narrower))
    return pairs or None


def _string_condition(condition: Tuple[str, Any]) -> Optional[Tuple[str, str, str]]:
    """(field, "=" or ">=", string) for a condition on a string the store can narrow rows by."""
    name, cond = condition
    if name.startswith("$") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    if isinstance(cond, str):
        return name, "=", cond
    if isinstance(cond, dict) and set(cond) == {"$gte"} and isinstance(cond["$gte"], str):
        return name, ">=", cond["$gte"]
    return None


def _preselect(condition: Tuple[str, Any]) -> Optional[Tuple[str, Tuple[str, List[Any]]]]:
    """("in" or "=", (field, values)) for a condition the store can pre-select rows by."""
    name, cond = condition
    if name.startswith("$") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    if isinstance(cond, (str, int, float)) and not isinstance(cond, bool):
        return "=", (name, [cond])
    if isinstance(cond, dict) and set(cond) == {"$in"} and isinstance(cond["$in"], list):
        if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in cond["$in"]):
            return "in", (name, list(cond["$in"]))
    return None
