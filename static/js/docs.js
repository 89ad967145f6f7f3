// Starts Swagger UI on /docs. The bundle comes from npm's swagger-ui-dist, served by treu; this
// file exists because the page's Content-Security-Policy allows no inline script.
/* global SwaggerUIBundle */
const root = document.getElementById("swagger-ui");

window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // No badge from validator.swagger.io: the page asks nothing of another site.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
