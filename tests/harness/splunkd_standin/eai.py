"""Rendering of splunkd EAI answers: Atom XML (splunkd's default, what splunklib parses) and
``output_mode=json``; splunkd-style error bodies; the EAI ``search=`` filter."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

GENERATOR_VERSION = "9.3.2"
GENERATOR_BUILD = "d8bb32809498"

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return escape(_XML_ILLEGAL.sub("\ufffd", value))


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def default_acl(app: str, owner: str = "nobody", sharing: str = "app") -> Dict[str, Any]:
    return {
        "app": app,
        "can_change_perms": True,
        "can_list": True,
        "can_share_app": True,
        "can_share_global": True,
        "can_share_user": False,
        "can_write": True,
        "modifiable": True,
        "owner": owner,
        "perms": {"read": ["*"], "write": ["admin", "sc_admin"]},
        "removable": False,
        "sharing": sharing,
    }


@dataclass
class Entry:
    """One EAI entity. ``path`` is the collection path relative to the namespace, e.g.
    ``configs/conf-foo``; links are built from it and the entity's ACL app/owner."""

    name: str
    path: str
    content: Dict[str, Any]
    acl: Dict[str, Any]
    extra_links: List[str] = field(default_factory=list)

    def href(self) -> str:
        owner = quote(str(self.acl.get("owner", "nobody")), safe="")
        app = quote(str(self.acl.get("app", "system")), safe="")
        return f"/servicesNS/{owner}/{app}/{self.path}/{quote(self.name, safe='')}"

    def links(self) -> Dict[str, str]:
        href = self.href()
        links = {"alternate": href, "list": href, "edit": href, "remove": href}
        for rel in self.extra_links:
            links[rel] = f"{href}/{rel}"
        return links


def _xml_value(value: Any, indent: str) -> str:
    if isinstance(value, dict):
        inner = "".join(
            f"{indent}  <s:key name={quoteattr(str(k))}>{_xml_value(v, indent + '    ')}</s:key>\n"
            for k, v in value.items()
        )
        return f"\n{indent}<s:dict>\n{inner}{indent}</s:dict>\n{indent[:-2]}"
    if isinstance(value, list):
        inner = "".join(f"{indent}  <s:item>{_xml_value(v, indent + '    ')}</s:item>\n" for v in value)
        return f"\n{indent}<s:list>\n{inner}{indent}</s:list>\n{indent[:-2]}"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return _xml_text(str(value))


def render_feed(
    *,
    base_uri: str,
    feed_path: str,
    title: str,
    entries: List[Entry],
    total: int,
    offset: int,
    per_page: int,
    json_mode: bool,
    messages: Optional[List[Tuple[str, str]]] = None,
) -> Tuple[bytes, str]:
    """A feed as splunkd renders it. Returns (body, content type)."""
    updated = now_iso()
    feed_links = {"create": f"{feed_path}/_new", "_reload": f"{feed_path}/_reload", "_acl": f"{feed_path}/_acl"}
    if json_mode:
        doc = {
            "links": feed_links,
            "origin": base_uri + feed_path,
            "updated": updated,
            "generator": {"build": GENERATOR_BUILD, "version": GENERATOR_VERSION},
            "entry": [
                {
                    "name": e.name,
                    "id": base_uri + e.href(),
                    "updated": updated,
                    "links": e.links(),
                    "author": e.acl.get("owner", "nobody"),
                    "acl": e.acl,
                    "content": {**e.content, "eai:acl": None},
                }
                for e in entries
            ],
            "paging": {"total": total, "perPage": per_page, "offset": offset},
            "messages": [{"type": t, "text": m} for t, m in (messages or [])],
        }
        return json.dumps(doc).encode("utf-8"), "application/json; charset=UTF-8"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        "<!--This is to override browser formatting; see server.conf[httpServer] to disable. .-->\n",
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">\n',
        f"  <title>{_xml_text(title)}</title>\n",
        f"  <id>{_xml_text(base_uri + feed_path)}</id>\n",
        f"  <updated>{updated}</updated>\n",
        f'  <generator build="{GENERATOR_BUILD}" version="{GENERATOR_VERSION}"/>\n',
        "  <author>\n    <name>Splunk</name>\n  </author>\n",
    ]
    parts.extend(f"  <link href={quoteattr(href)} rel={quoteattr(rel)}/>\n" for rel, href in feed_links.items())
    parts.append(f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n")
    parts.append(f"  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>\n")
    parts.append(f"  <opensearch:startIndex>{offset}</opensearch:startIndex>\n")
    if messages:
        parts.append("  <s:messages>\n")
        parts.extend(f'    <s:msg type="{t}">{_xml_text(m)}</s:msg>\n' for t, m in messages)
        parts.append("  </s:messages>\n")
    else:
        parts.append("  <s:messages/>\n")
    for e in entries:
        content = {**e.content, "eai:acl": e.acl}
        parts.append("  <entry>\n")
        parts.append(f"    <title>{_xml_text(e.name)}</title>\n")
        parts.append(f"    <id>{_xml_text(base_uri + e.href())}</id>\n")
        parts.append(f"    <updated>{updated}</updated>\n")
        links = e.links()
        parts.append(f'    <link href={quoteattr(links.pop("alternate"))} rel="alternate"/>\n')
        parts.append(
            f"    <author>\n      <name>{_xml_text(str(e.acl.get('owner', 'nobody')))}</name>\n    </author>\n"
        )
        parts.extend(f"    <link href={quoteattr(href)} rel={quoteattr(rel)}/>\n" for rel, href in links.items())
        parts.append(f'    <content type="text/xml">{_xml_value(content, "      ")}  </content>\n')
        parts.append("  </entry>\n")
    parts.append("</feed>\n")
    return "".join(parts).encode("utf-8"), "text/xml; charset=UTF-8"


def render_error(text: str, json_mode: bool, msg_type: str = "ERROR") -> Tuple[bytes, str]:
    """splunkd's error body: ``{"messages":[...]}`` or ``<response><messages><msg>``."""
    if json_mode:
        return json.dumps({"messages": [{"type": msg_type, "text": text}]}).encode("utf-8"), (
            "application/json; charset=UTF-8"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <messages>\n'
        f'    <msg type="{msg_type}">{_xml_text(text)}</msg>\n  </messages>\n</response>\n'
    )
    return body.encode("utf-8"), "text/xml; charset=UTF-8"


def _split_terms(search: str) -> List[str]:
    terms: List[str] = []
    current = ""
    i = 0
    while i < len(search):
        ch = search[i]
        if ch == "\\" and i + 1 < len(search):
            current += search[i : i + 2]
            i += 2
            continue
        if ch.isspace():
            if current:
                terms.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if current:
        terms.append(current)
    return terms


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _flatten(prefix: str, value: Any, out: Dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool):
        out[prefix] = "1" if value else "0"
    elif value is not None:
        out[prefix] = str(value) if not isinstance(value, list) else ",".join(map(str, value))


def search_matches(entry: Entry, search: str) -> bool:
    """EAI ``search=``: space-separated terms, all must match. ``field=value`` compares the
    field (content, ``name``/``title``, ``eai:acl.*``) case-insensitively with ``*`` wildcards;
    a bare term matches when the name or any value contains it."""
    fields: Dict[str, str] = {}
    _flatten("", entry.content, fields)
    _flatten("eai:acl", entry.acl, fields)
    fields["name"] = entry.name
    fields["title"] = entry.name
    for term in _split_terms(search):
        match = re.match(r"^((?:[^=\\]|\\.)+)=(.*)$", term)
        if match:
            key, value = _unescape(match.group(1)), _unescape(match.group(2)).lower()
            actual = fields.get(key)
            pattern = "^" + re.escape(value).replace(r"\*", ".*") + "$"
            if actual is None or re.match(pattern, actual.lower(), re.DOTALL) is None:
                return False
        else:
            needle = _unescape(term).lower().replace("*", "")
            if not any(needle in v.lower() for v in fields.values()):
                return False
    return True
