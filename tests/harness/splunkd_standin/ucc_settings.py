"""Read side of a UCC settings REST handler (``<restroot>_settings/<stanza>``), as UCC generates it.

Why it is here: splunktaucclib's alert-action base class (``ModularAlertBase.run``) reads the log
level through ``splunktaucclib.global_config``, which GETs every settings page of globalConfig.json
(``/servicesNS/nobody/<app>/<restroot>_settings/<name>?output_mode=json&count=0&--cred--=1``).
UCC's handler (splunktaucclib.rest_handler) answers from ``<restroot>_settings.conf``; with
``--cred--=1`` the encrypted fields (``******`` in the conf file) come back decrypted from
storage/passwords (realm ``__REST_CREDENTIAL__#<app>#configs/conf-<restroot>_settings``, the JSON
object of the stanza's clear values). Only GET is implemented; a missing stanza is a 404.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from .eai import Entry, default_acl
from .store import Store

UCC_PLACEHOLDER = "******"
CRED_SEP = "``splunk_cred_sep``"


def clear_fields(store: Store, app: str, conf: str, stanza: str) -> Dict[str, Any]:
    """The stanza's encrypted fields, clear: solnlib's chunked storage/passwords entries joined."""
    realm = f"__REST_CREDENTIAL__#{app}#configs/conf-{conf}"
    chunks: List[tuple] = []
    for pw in store.pw_list(None):
        user, sep, number = str(pw["username"]).rpartition(CRED_SEP)
        if pw["realm"] == realm and sep and user == stanza and number.isdigit():
            chunks.append((int(number), str(pw["clear_password"])))
    text = "".join(c for _, c in sorted(chunks))
    text = text.split(CRED_SEP, 1)[0]  # the end mark starts with the separator
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def settings_entry(
    store: Store, app: str, conf: str, stanza: str, fields: Optional[Dict[str, str]], cred: bool
) -> Optional[Entry]:
    if fields is None:
        return None
    content: Dict[str, Any] = {"disabled": False, **fields}
    if cred:
        for name, value in clear_fields(store, app, conf, stanza).items():
            if content.get(name) == UCC_PLACEHOLDER:
                content[name] = value
    return Entry(stanza, conf, content, default_acl(app), ["list"])
