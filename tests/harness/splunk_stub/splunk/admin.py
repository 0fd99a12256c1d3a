"""Stand-in for Splunk's ``splunk.admin`` (it exists only inside splunkd): enough to RUN an
``admin_external`` REST handler as splunkd's AdminManagerExternal does.

splunkd starts a handler script (``restmap.conf`` ``handlerfile``), which calls
``admin.init(HandlerClass, ctxInfo)``; init reads the request splunkd hands over, builds the
handler, calls ``setup()`` (the handler declares its arguments there), refuses undeclared or missing
arguments, calls ``handleList``/``handleCreate``/``handleEdit``/``handleRemove`` with an empty
``ConfInfo``, and splunkd renders the filled ``ConfInfo`` as an EAI feed. Here the request comes
from :func:`serve` (the Splunk Web stand-in's handler worker sets it before running the script)
and the outcome is kept in :data:`last_result`.

Without a pending request (a plain import, as the runtime-import tests do) nothing runs.
"""

from typing import Any, Dict, List, Optional

ACTION_CREATE = 1
ACTION_LIST = 2
ACTION_EDIT = 4
ACTION_REMOVE = 8
ACTION_MEMBERS = 16
ACTION_RELOAD = 32
CONTEXT_NONE = 0
CONTEXT_APP_ONLY = 1
CONTEXT_APP_AND_USER = 2
EAI_ENTRY_ACL = "eai:acl"

ACTIONS = {"list": ACTION_LIST, "create": ACTION_CREATE, "edit": ACTION_EDIT, "remove": ACTION_REMOVE}


class AdminManagerException(Exception):
    status = 500


class ArgValidationException(AdminManagerException):
    status = 400


class NotFoundException(AdminManagerException):
    status = 404


class AlreadyExistsException(AdminManagerException):
    status = 409


class InternalException(AdminManagerException):
    status = 500


class BadProgrammerException(AdminManagerException):
    status = 500


class HandlerSetupException(AdminManagerException):
    status = 500


class CallerArgs:
    def __init__(self, name: Optional[str], data: Dict[str, List[str]]) -> None:
        self.id = name
        self.data = data


class SupportedArgs:
    def __init__(self) -> None:
        self.required: List[str] = []
        self.optional: List[str] = []

    def addReqArg(self, name: str) -> None:
        self.required.append(name)

    def addOptArg(self, name: str) -> None:
        self.optional.append(name)


class ConfItem(dict):
    def __init__(self) -> None:
        super().__init__()
        self.metadata: Dict[str, Any] = {}

    def setMetadata(self, key: str, value: Any) -> None:
        self.metadata[key] = value

    def append(self, key: str, value: Any) -> None:
        self.setdefault(key, [])
        self[key].append(value)


class ConfInfo(dict):
    """``confInfo[name]`` creates the entity on first use, as splunk.admin's does."""

    def __getitem__(self, name: str) -> ConfItem:
        if name not in self:
            super().__setitem__(name, ConfItem())
        return dict.__getitem__(self, name)


class MConfigHandler:
    def __init__(self, scriptMode: Any = None, ctxInfo: Any = None, request: Any = None) -> None:
        req = request or _pending
        if req is None:
            raise HandlerSetupException("no request: this splunk.admin stand-in runs handlers only for serve()")
        self.requestedAction = ACTIONS[req["action"]]
        self.customAction = ""
        self.callerArgs = CallerArgs(req.get("name"), {k: list(v) for k, v in req.get("data", {}).items()})
        self.supportedArgs = SupportedArgs()
        self.userName = req.get("user", "admin")
        self.appName = req["app"]
        self.context = ctxInfo
        self._session_key = req["session_key"]

    def getSessionKey(self) -> str:
        return self._session_key

    def setup(self) -> None:
        pass


_pending: Optional[Dict[str, Any]] = None
last_result: Optional[Dict[str, Any]] = None


def _check_args(handler: MConfigHandler) -> None:
    if handler.requestedAction not in (ACTION_CREATE, ACTION_EDIT):
        return
    declared = set(handler.supportedArgs.required) | set(handler.supportedArgs.optional)
    for name in handler.callerArgs.data:
        if name not in declared:
            raise ArgValidationException(f'Argument "{name}" is not supported by this handler.')
    if handler.requestedAction == ACTION_CREATE:
        missing = [n for n in handler.supportedArgs.required if n not in handler.callerArgs.data]
        if missing:
            raise ArgValidationException("Missing required argument(s): " + ", ".join(missing))


def init(handler_class: Any, ctxInfo: Any = CONTEXT_APP_ONLY) -> None:
    """Run the pending request through ``handler_class``; the outcome lands in :data:`last_result`
    (``entities``: name, content, metadata; or ``error``: the exception, as splunkd reports it)."""
    global last_result
    if _pending is None:
        return
    handler = handler_class(None, ctxInfo)
    handler.setup()
    _check_args(handler)
    method = {
        ACTION_LIST: handler.handleList,
        ACTION_CREATE: handler.handleCreate,
        ACTION_EDIT: handler.handleEdit,
        ACTION_REMOVE: handler.handleRemove,
    }[handler.requestedAction]
    conf_info = ConfInfo()
    method(conf_info)
    last_result = {
        "entities": [
            {"name": name, "content": dict(item), "metadata": dict(item.metadata)} for name, item in conf_info.items()
        ]
    }


def serve(request: Dict[str, Any]) -> None:
    """Make ``request`` the one the next :func:`init` handles (action, name, data, app, session_key)."""
    global _pending, last_result
    _pending = request
    last_result = None


def done() -> None:
    global _pending
    _pending = None
