"""Runs the BUILT add-on's REST handler scripts as splunkd's persistent handler process does
(``restmap.conf``: ``handlerpersistentmode = true``), one request at a time.

Started by :class:`tests.harness.splunkweb_standin.handlers.HandlerWorker` with the add-on's
interpreter (3.9 or 3.13), cwd ``bin/``, and the fake ``splunk`` package on PYTHONPATH. Each line on
stdin is a JSON request (handler file, action, entity name, arguments, session key); the generated
``ta_defender_lineage_rh_*.py`` runs as ``__main__`` (so its ``admin_external.handle(...)`` call
runs the handler through ``splunk.admin.init``), and one JSON line answers on the protocol pipe.
Whatever the handler prints goes to stderr. Runs on Python 3.9: no newer syntax here.
"""

import importlib
import json
import os
import runpy
import sys
import traceback


def main() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # a handler's print must not break the protocol
    bin_dir = os.getcwd()
    sys.path.insert(0, bin_dir)
    from splunk import admin  # the stand-in, from PYTHONPATH

    # Warm up while the browser loads the page, as a persistent handler process is warm after its
    # first request: the handler scripts' imports (lib/ on sys.path, splunktaucclib, solnlib).
    importlib.import_module("import_declare_test")
    importlib.import_module("splunktaucclib.rest_handler.admin_external")

    for line in sys.stdin:
        request = json.loads(line)
        admin.serve(request)
        try:
            runpy.run_path(os.path.join(bin_dir, request["handler_file"]), run_name="__main__")
            answer = admin.last_result or {
                "error": {"type": "NoResult", "status": 500, "text": "handler gave no answer"}
            }
        except Exception as exc:  # splunkd reports any exception of the handler to the caller
            answer = {
                "error": {
                    "type": f"<class '{type(exc).__module__}.{type(exc).__qualname__}'>",
                    "status": getattr(exc, "status", 500) if isinstance(exc, admin.AdminManagerException) else 500,
                    "admin": isinstance(exc, admin.AdminManagerException),
                    "text": str(exc),
                    "traceback": traceback.format_exc(),
                }
            }
        finally:
            admin.done()
        protocol.write(json.dumps(answer, default=str) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
