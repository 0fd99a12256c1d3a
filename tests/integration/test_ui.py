"""The BUILT configuration pages in headless Chromium, against the Splunk Web stand-in with the
add-on's real REST handlers behind it (tests/harness/splunkweb_standin).

Selected with ``-m ui``. Screenshots of each page land in ``output/ui-screenshots/`` (gitignored).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.harness.graph_sim import GraphSimulator
from tests.harness.pipeline import ROOT, seed_account
from tests.harness.splunkd_standin import SplunkdStandin
from tests.harness.splunkweb_standin import SplunkWebStandin

pytestmark = [pytest.mark.integration, pytest.mark.ui]

SCREENSHOTS = ROOT / "output" / "ui-screenshots"
GLOBAL_CONFIG = json.loads((ROOT / "globalConfig.json").read_text())
ACCOUNT_CONF = "ta_defender_lineage_account"
SETTINGS_CONF = "ta_defender_lineage_settings"
# Console messages a healthy page may log (matched against the text). Nothing else is allowed:
# "Invalid globalConfig.json" in particular is fixed, not allowed.
CONSOLE_ALLOWED = [
    r"^\nUCC Framework is here",  # UCC's greeting, a console.log
]

# A value breaking each validator of globalConfig.json, by (field, validator type). Fields the UI
# offers only as a fixed list (singleSelect) cannot be given a breaking value by an admin: for
# those the test checks every offered value passes instead (value None).
BREAKING: Dict[Tuple[str, str], Optional[str]] = {
    ("name", "regex"): "1st-account",
    ("name", "string"): "a" * 101,
    ("tenant_id", "regex"): "not-a-guid",
    ("client_id", "regex"): "4a1f0c2e9b7d4c3a8e552f6d1b0a9c31",
    ("client_secret", "string"): "s" * 1025,
    ("cloud", "regex"): None,
    ("login_url", "regex"): "http://login.example.com",
    ("graph_url", "regex"): "https://graph.example.com/v1.0?x=1",
    ("account", "string"): None,
    ("start_date", "regex"): "yesterday",
    ("query", "string"): "q" * 30001,
    ("query", "regex"): "   ",
    ("lookback", "regex"): "1 day",
    ("tenants", "regex"): "contoso, *",
    # the proxy tab's fields, once globalConfig.json overrides UCC's defaults for them
    ("proxy_type", "regex"): None,
    ("proxy_url", "string"): "a" * 4097,
    ("proxy_url", "regex"): "http://proxy.corp.example.com:3128",
    ("proxy_port", "number"): "70000",
    ("proxy_password", "string"): "p" * 8193,
}


# ---- page helpers ------------------------------------------------------------------------------


class Ui:
    """A page of the add-on in one browser tab, with what it logged."""

    def __init__(self, browser: Any, web: SplunkWebStandin) -> None:
        self.web = web
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.console: List[str] = []
        self.allowed = list(CONSOLE_ALLOWED)
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))

    def open(self, view: str, tab: Optional[str] = None) -> None:
        self.page.goto(self.web.page_url(view, f"tab={tab}" if tab else ""))
        self.page.wait_for_selector("[data-test='table'], form, [data-test='tab']", state="visible")
        self.page.wait_for_load_state("networkidle")

    def tab(self, tab: str) -> None:
        self.page.locator(f"[data-test-tab-id='{tab}']").click()
        self.page.wait_for_load_state("networkidle")

    def new_input(self, title: str) -> None:
        self.page.get_by_role("button", name="Create New Input").click()
        self.page.get_by_role("menuitem", name=re.compile(re.escape(title))).click()
        self.page.locator("[data-test='modal']").wait_for(state="visible")

    def field(self, name: str) -> Any:
        modal = self.page.locator("[data-test='modal']")
        scope = modal if modal.count() else self.page  # a dialog, else the tab's own form (proxy, logging)
        return scope.locator(f"[data-name='{name}']").first

    def fill(self, name: str, value: str) -> None:
        self.field(name).locator("input:visible, textarea:visible").first.fill(value)

    def value(self, name: str) -> str:
        return str(self.field(name).locator("input:visible, textarea:visible").first.input_value())

    def choose(self, name: str, label: str) -> None:
        self.field(name).locator("button, [role='combobox']").first.click()
        self.page.get_by_role("option", name=label, exact=True).click()

    def options(self, name: str) -> List[str]:
        toggle = self.field(name).locator("button, [role='combobox']").first
        toggle.click()
        self.page.get_by_role("option").first.wait_for()
        labels = [str(t).strip() for t in self.page.get_by_role("option").all_inner_texts()]
        toggle.click()  # closes the list (Escape would close the dialog too)
        return labels

    def modal_button(self, label: str) -> Any:
        return self.page.locator("[data-test='modal']").get_by_role("button", name=label, exact=True)

    def row(self, name: str) -> Any:
        return self.page.locator("tbody tr").filter(has=self.page.get_by_role("cell", name=name, exact=True))

    def action(self, name: str, label: str) -> None:
        self.row(name).get_by_role("button", name=re.compile(label, re.I)).first.click()
        self.page.locator("[data-test='modal']").wait_for(state="visible")

    def shot(self, name: str, height: Optional[int] = None) -> None:
        """A screenshot of the page (its top ``height`` pixels when given: tables are short)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        clip = {"x": 0, "y": 0, "width": 1280, "height": height} if height else None
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), clip=clip)

    def console_errors(self) -> List[str]:
        return [m for m in self.console if not any(re.search(a, m) for a in self.allowed)]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ui(browser: Any, web: SplunkWebStandin) -> Iterator[Ui]:
    page = Ui(browser, web)
    yield page
    page.close()
    assert page.console_errors() == [], f"console errors outside the allow-list: {page.console_errors()}"


def posts(web: SplunkWebStandin, since: int = 0) -> List[Any]:
    return [c for c in web.handler_calls[since:] if c.action != "list"]


def fill_account(ui: Ui, sim: GraphSimulator, name: str) -> None:
    ui.fill("name", name)
    ui.fill("tenant_id", sim.tenant_id)
    ui.fill("client_id", sim.client_id)
    ui.fill("client_secret", sim.client_secret)
    ui.choose("cloud", "Custom endpoints")
    ui.fill("login_url", sim.base_url)
    ui.fill("graph_url", sim.base_url)


def entity_validators(entity: List[Dict[str, Any]]) -> List[Tuple[str, Dict[str, Any]]]:
    return [(f["field"], v) for f in entity for v in f.get("validators", [])]


# ---- the tests ---------------------------------------------------------------------------------


def test_pages_render_with_no_console_error(ui: Ui, web: SplunkWebStandin) -> None:
    ui.open("inputs")
    assert ui.row("example_alert_evidence").locator("[data-test='status']").inner_text() == "Inactive"
    ui.shot("inputs")
    ui.new_input("Defender XDR advanced hunting")
    ui.field("query").wait_for()
    ui.shot("inputs-hunting-add")
    ui.modal_button("Cancel").click()
    ui.open("configuration", "account")
    ui.shot("configuration-account")
    ui.page.get_by_role("button", name="Add").click()
    ui.field("tenant_id").wait_for()
    ui.shot("configuration-account-add")
    ui.modal_button("Cancel").click()
    for tab in ("proxy", "logging"):
        ui.tab(tab)
        ui.shot(f"configuration-{tab}")
    assert {c.endpoint for c in web.handler_calls} >= {
        "ta_defender_lineage_account",
        "ta_defender_lineage_settings",
        "ta_defender_lineage_defender_alerts",
        "ta_defender_lineage_defender_incidents",
        "ta_defender_lineage_defender_hunting",
    }


def proxy_tab_fields() -> List[Dict[str, Any]]:
    """The proxy tab's fields that globalConfig.json overrides with validators of its own (UCC's
    defaults for the others are not in the file; the proxy save test covers them)."""
    tab = next(t for t in GLOBAL_CONFIG["pages"]["configuration"]["tabs"] if t.get("type") == "proxyTab")
    return [v for v in tab.values() if isinstance(v, dict) and "field" in v and v.get("validators")]


def passes(validator: Dict[str, Any], value: str) -> bool:
    if validator["type"] == "regex":
        return re.search(validator["pattern"], value) is not None
    if validator["type"] == "string":
        return int(validator.get("minLength", 0)) <= len(value) <= int(validator.get("maxLength", 1 << 30))
    low, high = validator["range"]
    return low <= float(value) <= high


def test_every_validator_shows_its_message_and_sends_nothing(
    sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui
) -> None:
    seed_account(splunkd, sim, "demo")
    account_tab = GLOBAL_CONFIG["pages"]["configuration"]["tabs"][0]
    forms = [("account", "", account_tab["entity"])]
    forms += [("input", s["title"], s["entity"]) for s in GLOBAL_CONFIG["pages"]["inputs"]["services"]]
    if proxy_tab_fields():
        forms.append(("proxy", "", proxy_tab_fields()))
    checked, previous = 0, ""
    ui.open("configuration", "account")
    for kind, title, entity in forms:
        scope, submit = ui.page.locator("[data-test='modal']"), "Add"
        if kind == "account":
            ui.page.get_by_role("button", name="Add").click()
            fill_account(ui, sim, "valid_name")
        elif kind == "input":
            if kind != previous:
                ui.open("inputs")
            ui.new_input(title)
            ui.fill("name", "valid_input")
            ui.choose("account", "demo")
            if ui.page.locator("[data-test='modal'] [data-name='query']").count():
                ui.fill("query", "AlertInfo")
            # the interval field's range (options.range), checked in the browser as well
            ui.fill("interval", "30")
            ui.modal_button("Add").click()
            scope.get_by_text(re.compile(r"Interval.*60.*86400")).wait_for()
            ui.fill("interval", "300")
            checked += 1
        else:
            ui.open("configuration", "proxy")
            ui.fill("proxy_url", "proxy.corp.example.com")
            ui.fill("proxy_port", "3128")
            scope, submit = ui.page.locator("body"), "Save"
        previous = kind
        for field, validator in entity_validators(entity):
            key = (field, validator["type"])
            assert key in BREAKING, f"no breaking value for the {validator['type']} validator of {field}: add one"
            bad = BREAKING[key]
            if bad is None:  # a fixed list: every value it offers must pass the validator
                spec = next(f for f in entity if f["field"] == field)
                offered = [o["value"] for o in spec["options"].get("autoCompleteFields", [])] or ui.options(field)
                assert offered and all(passes(validator, v) for v in offered), (field, offered)
                continue
            assert not passes(validator, bad), f"the breaking value for {key} passes it"
            good = ui.value(field)
            ui.fill(field, bad)
            before = len(web.handler_calls)
            scope.get_by_role("button", name=submit, exact=True).click()
            scope.get_by_text(validator["errorMsg"], exact=False).first.wait_for(state="visible")
            assert posts(web, before) == [], f"{field}={bad[:20]!r} was sent to the server"
            ui.fill(field, good)
            checked += 1
        if kind != "proxy":
            ui.modal_button("Cancel").click()
    assert checked >= 14
    assert not any(c.action != "list" for c in web.handler_calls)


def stored_secret(splunkd: SplunkdStandin, conf: str, stanza: str) -> Dict[str, str]:
    """The clear values UCC keeps for a stanza in storage/passwords (chunked JSON, in order)."""
    realm = splunkd.ucc_realm(conf)
    chunks = [c for c in splunkd.credentials(realm) if c["username"].startswith(f"{stanza}``")]
    chunks.sort(key=lambda c: int(c["username"].rsplit("``", 1)[-1]))
    text = "".join(c["clear_password"] for c in chunks)
    text = text.split("``splunk_cred_sep``S``")[0]
    return dict(json.loads(text)) if text else {}


def test_account_create_edit_clone_delete(
    sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui
) -> None:
    ui.open("configuration", "account")
    ui.page.get_by_role("button", name="Add").click()
    fill_account(ui, sim, "prod")
    ui.modal_button("Add").click()
    ui.row("prod").wait_for()
    # UCC's handler stored the secret encrypted: a placeholder in the conf, the value in storage/passwords
    conf = splunkd.conf_stanza(ACCOUNT_CONF, "prod") or {}
    assert conf["tenant_id"] == sim.tenant_id and conf["client_secret"] == "******"
    assert stored_secret(splunkd, ACCOUNT_CONF, "prod")["client_secret"] == sim.client_secret
    ui.shot("configuration-account-list", height=300)

    ui.action("prod", "edit")
    assert ui.value("tenant_id") == sim.tenant_id
    modal_html = ui.page.locator("[data-test='modal']").inner_html()
    assert sim.client_secret not in modal_html and ui.value("client_secret") != sim.client_secret
    ui.shot("configuration-account-edit")
    ui.fill("client_id", sim.client_id.upper())
    ui.modal_button("Update").click()
    ui.page.locator("[data-test='modal']").wait_for(state="hidden")
    assert (splunkd.conf_stanza(ACCOUNT_CONF, "prod") or {})["client_id"] == sim.client_id.upper()
    assert stored_secret(splunkd, ACCOUNT_CONF, "prod")["client_secret"] == sim.client_secret

    ui.action("prod", "clone")
    assert sim.client_secret not in ui.page.locator("[data-test='modal']").inner_html()
    ui.fill("name", "prod_copy")
    ui.fill("client_secret", sim.client_secret)
    ui.modal_button("Save").click()
    ui.row("prod_copy").wait_for()
    assert (splunkd.conf_stanza(ACCOUNT_CONF, "prod_copy") or {})["client_id"] == sim.client_id.upper()

    ui.action("prod_copy", "delete")
    ui.modal_button("Delete").click()
    ui.row("prod_copy").wait_for(state="detached")
    assert splunkd.conf_stanza(ACCOUNT_CONF, "prod_copy") is None
    assert [(c.action, c.name) for c in posts(web)] == [
        ("create", "prod"),
        ("edit", "prod"),
        ("create", "prod_copy"),
        ("remove", "prod_copy"),
    ]


def test_failing_account_check_shows_the_actionable_message(
    sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui
) -> None:
    sim.set_roles("SecurityAlert.Read.All")  # the incidents permission is missing
    ui.allowed.append(r"status of 500 \(Internal Server Error\)$")  # the refused save, as splunkd answers it
    ui.open("configuration", "account")
    ui.page.get_by_role("button", name="Add").click()
    fill_account(ui, sim, "noincidents")
    ui.modal_button("Add").click()
    message = ui.page.locator("[data-test='modal']").get_by_text("SecurityIncident.Read.All")
    message.first.wait_for(state="visible")
    text = message.first.inner_text()
    # the README's row "missing permission": which permission, and that it needs admin consent;
    # UCC shows the handler's own words, not splunkd's wrapping of them
    assert "SecurityIncident.Read.All (incidents)" in text and "Grant admin consent" in text
    assert "REST Error" not in text and "Unexpected error" not in text
    message.first.scroll_into_view_if_needed()
    ui.shot("configuration-account-check-failed", height=560)
    assert splunkd.conf_stanza(ACCOUNT_CONF, "noincidents") is None
    sim.set_roles("SecurityAlert.Read.All", "SecurityIncident.Read.All")
    ui.modal_button("Add").click()
    ui.row("noincidents").wait_for()


def test_input_create_edit_clone_delete(
    sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui
) -> None:
    seed_account(splunkd, sim, "demo")
    ui.open("inputs")
    ui.page.get_by_role("button", name="Create New Input").click()
    ui.page.get_by_role("menuitem", name=re.compile("Defender XDR alerts")).click()
    ui.fill("name", "alerts_prod")
    ui.choose("account", "demo")
    ui.fill("interval", "600")
    ui.fill("start_date", "2026-11-01T00:00:00Z")
    ui.modal_button("Add").click()
    ui.row("alerts_prod").wait_for()
    stanza = splunkd.conf_stanza("inputs", "defender_alerts://alerts_prod") or {}
    assert stanza["account"] == "demo" and stanza["interval"] == "600"
    assert stanza["start_date"] == "2026-11-01T00:00:00Z"
    assert ui.row("alerts_prod").locator("[data-test='status']").inner_text() == "Active"
    ui.shot("inputs-list", height=400)

    ui.row("alerts_prod").locator("[data-test='status']").locator("xpath=..").locator(
        "button, [role='switch']"
    ).first.click()
    ui.row("alerts_prod").get_by_text("Inactive").first.wait_for()
    assert (splunkd.conf_stanza("inputs", "defender_alerts://alerts_prod") or {})["disabled"] in ("1", "true")

    ui.action("alerts_prod", "edit")
    ui.fill("interval", "900")
    ui.modal_button("Update").click()
    ui.page.locator("[data-test='modal']").wait_for(state="hidden")
    assert (splunkd.conf_stanza("inputs", "defender_alerts://alerts_prod") or {})["interval"] == "900"

    ui.action("alerts_prod", "clone")
    ui.fill("name", "alerts_copy")
    ui.modal_button("Save").click()
    ui.row("alerts_copy").wait_for()
    assert (splunkd.conf_stanza("inputs", "defender_alerts://alerts_copy") or {})["interval"] == "900"

    # Its cursors: its own, and one per tenant (a tenants field); other inputs' cursors stay.
    tenants = ("0f1e2d3c-4b5a-4987-8654-3210fedcba98", "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d")
    gone = ["defender_alerts__alerts_copy"] + [f"defender_alerts__alerts_copy__{t}" for t in tenants]
    kept = [
        "defender_alerts__alerts_prod",
        "defender_alerts__alerts_copy__x",  # the input named alerts_copy__x
        f"defender_incidents__alerts_copy__{tenants[0]}",
    ]
    splunkd.kv_save("ta_defender_lineage_checkpoints", [{"_key": k, "state": "{}"} for k in gone + kept])
    ui.action("alerts_copy", "delete")
    ui.modal_button("Delete").click()
    ui.row("alerts_copy").wait_for(state="detached")
    assert splunkd.conf_stanza("inputs", "defender_alerts://alerts_copy") is None
    assert sorted(d["_key"] for d in splunkd.kv_records("ta_defender_lineage_checkpoints")) == sorted(kept)


def test_logging_save(sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui) -> None:
    ui.open("configuration", "logging")
    ui.choose("loglevel", "DEBUG")
    ui.page.get_by_role("button", name="Save").click()
    ui.page.get_by_text('Updated "Logging"').wait_for()
    assert (splunkd.conf_stanza(SETTINGS_CONF, "logging") or {})["loglevel"] == "DEBUG"


def test_proxy_save_keeps_the_password_encrypted(
    sim: GraphSimulator, splunkd: SplunkdStandin, web: SplunkWebStandin, ui: Ui
) -> None:
    ui.open("configuration", "proxy")
    ui.field("proxy_enabled").locator("[role='checkbox'], input[type='checkbox'], button").first.click()
    ui.fill("proxy_url", "proxy.corp.example.com")
    ui.fill("proxy_port", "3128")
    ui.fill("proxy_username", "svc_proxy")
    ui.fill("proxy_password", "Pr0xy-pa55word")
    ui.page.get_by_role("button", name="Save").click()
    saved = ui.page.get_by_text('Updated "Proxy"')
    refused = ui.page.get_by_text("should not have special characters")
    saved.or_(refused).first.wait_for()
    assert not refused.is_visible(), "the proxy tab refused a real host name"
    ui.shot("configuration-proxy-saved")
    conf = splunkd.conf_stanza(SETTINGS_CONF, "proxy") or {}
    assert conf["proxy_url"] == "proxy.corp.example.com" and conf["proxy_password"] == "******"
    assert stored_secret(splunkd, SETTINGS_CONF, "proxy")["proxy_password"] == "Pr0xy-pa55word"
    ui.open("configuration", "proxy")
    assert ui.value("proxy_password") != "Pr0xy-pa55word"
