"""Plain-Python core of TA-defender-lineage: Graph client, collector, taxonomy, lineage. Knows nothing of Splunk."""
