"""The scripts Splunk Web serves around an app page, reduced to what a UCC page uses.

Splunk Web's own versions are not redistributable; these give the same globals: ``window.$C``
(``/config?autoload=1``), the i18n functions (``static/js/i18n.js``: ``gettext``, ``_``,
``ngettext``, ``sprintf``, ``i18n_register``), the i18n catalog (``/i18ncatalog?autoload=1``, which
calls ``i18n_register``) and ``build/api/layout.js`` (``window.__splunk_layout__.create(options)``
returning an object whose ``getContainerElement()`` is the page body's container) and
``build/api/get_theme.js`` (``window.__get_theme__.getTheme()``, the user's theme). The layout's
Splunk bar and app bar are not drawn.
"""

from __future__ import annotations

import json
from typing import Any, Dict

I18N_JS = r"""
(function () {
  var catalog = {};
  function interpolate(text, args) {
    var i = 0;
    return text.replace(/%(\(\w+\))?[sd]/g, function (m, named) {
      if (named && args.length === 1 && typeof args[0] === 'object') { return String(args[0][named.slice(1, -1)]); }
      return String(args[i++]);
    });
  }
  window.gettext = function (s) { return Object.prototype.hasOwnProperty.call(catalog, s) ? catalog[s] : s; };
  window._ = window.gettext;
  window.ngettext = function (one, many, n) { return window.gettext(n === 1 ? one : many); };
  window.sprintf = function (text) { return interpolate(text, Array.prototype.slice.call(arguments, 1)); };
  window.format_number = function (n) { return String(n); };
  window.i18n_register = function (data) {
    var entries = (data && data.catalog) || {};
    for (var k in entries) { if (Object.prototype.hasOwnProperty.call(entries, k)) { catalog[k] = entries[k]; } }
  };
})();
"""

I18N_CATALOG_JS = "i18n_register({plural: function (n) { return n == 1 ? 0 : 1; }, catalog: {}});\n"

LAYOUT_JS = r"""
window.__splunk_layout__ = {
  create: function (options) {
    var container = document.createElement('div');
    container.setAttribute('data-standin', 'splunk-layout');
    container.style.display = 'flex';
    container.style.flexDirection = 'column';
    container.style.minHeight = '100vh';
    document.body.appendChild(container);
    return { getContainerElement: function () { return container; } };
  }
};
"""

# build/api/get_theme.js: the user's theme (Splunk Web answers from the user's preferences)
GET_THEME_JS = "window.__get_theme__ = { getTheme: function () { return Promise.resolve('light'); } };\n"


def config_js(values: Dict[str, Any]) -> str:
    return "window.$C = " + json.dumps(values, sort_keys=True) + ";\n"
