"""Names every Splunk-side module shares: one definition of each."""

APP = "TA-defender-lineage"
REST_ROOT = "ta_defender_lineage"
ACCOUNT_CONF = f"{REST_ROOT}_account"
SETTINGS_CONF = f"{REST_ROOT}_settings"
CHECKPOINT_COLLECTION = f"{REST_ROOT}_checkpoints"
USER_AGENT = f"{APP}/0.1 (Splunk add-on; +https://splunkbase.splunk.com)"
TENANT_CONF = f"{REST_ROOT}_tenant"
# KV store collection behind the automatic lookup that gives every event of the add-on its tenant_name
# (collections.conf, transforms.conf [ta_defender_lineage_tenants_lookup]); one row per tenant id.
TENANTS_COLLECTION = f"{REST_ROOT}_tenants"
