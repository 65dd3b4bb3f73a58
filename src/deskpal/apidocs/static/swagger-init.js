// Starts Swagger UI on /docs. A served file rather than an inline script, so that the page's
// Content-Security-Policy can forbid inline script (src/deskpal/apidocs/__init__.py).
"use strict";
(function () {
  var script = document.currentScript;
  var config = JSON.parse(script.dataset.config);
  config.url = script.dataset.openapiUrl;
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  window.ui = SwaggerUIBundle(config);
})();
