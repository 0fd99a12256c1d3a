"""UCC input helper for ``defender_incidents``: Graph incidents, sourcetype ms:defender:graph:incident."""

import import_declare_test  # noqa: F401  (puts the app's lib/ on sys.path)

from defender_lineage_core import process_tuning

process_tuning.before_imports()  # before the heavy imports below (process_tuning.py says why)

from splunklib import modularinput as smi  # noqa: E402

from defender_lineage_core.collector import INCIDENTS  # noqa: E402
from defender_lineage_modinput import stream_events as _stream  # noqa: E402
from defender_lineage_modinput import validate_input as _validate  # noqa: E402


def validate_input(definition: smi.ValidationDefinition) -> None:
    _validate(definition)


def stream_events(inputs: smi.InputDefinition, event_writer: smi.EventWriter) -> None:
    _stream(inputs, event_writer, "defender_incidents", INCIDENTS)
