"use strict";
// /docs: Swagger UI (served from the swagger-ui-py wheel, api/docs.py) renders the API's own
// generated OpenAPI document.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
