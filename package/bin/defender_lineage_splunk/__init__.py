"""The Splunk side of the add-on's inputs: the one package that knows splunkd, conf files,
stanzas, checkpoint keys, sourcetypes and the event stream.

``defender_lineage_core`` speaks Graph only; the input modules (``defender_lineage_modinput``,
``defender_lineage_hunting_input``) and the response actions (``defender_lineage_actions``) wire
the two together with what lives here:

* ``app``        app id, REST root, conf and collection names, user agent
* ``splunkd``    splunkd's address, the add-on's conf files (solnlib), the input logger, a Graph client
* ``clients``    a run's Graph client: deadline, timeout, its share of the request and hunting budgets
* ``inputs``     one registry entry per input kind; sources, checkpoint keys, the inputs sharing a budget
* ``stanzas``    the stanza loop and its ``run_failed`` line
* ``reporting``  the ``run_summary`` lines
* ``tenant_lookup`` the tenants lookup behind ``tenant_name``, kept in step with the Tenants tab
"""
