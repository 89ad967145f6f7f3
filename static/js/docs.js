// Starts Swagger UI on /docs. The bundle comes from npm's swagger-ui-dist, served by treu; this
// file exists because the page's Content-Security-Policy allows no inline script.
/* global SwaggerUIBundle */
const root = document.getElementById("swagger-ui");

window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  // No deep links: Swagger UI puts each as a link inside the operation's button, two controls
  // in one that a keyboard or screen reader cannot tell apart.
  deepLinking: false,
  showExtensions: true,
  showCommonExtensions: true,
  // No badge from validator.swagger.io: the page asks nothing of another site.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});

// Swagger UI's page, told apart for a screen reader (axe-core checks it): its title block is
// the page's banner, the tags (h3) and the schemas (h4) right under its h1 title are announced
// as the second level they are, and an open operation's sections (h4) as the third.
new MutationObserver(() => {
  for (const head of root.querySelectorAll(".information-container:not([role])")) {
    head.setAttribute("role", "banner");
  }
  for (const heading of root.querySelectorAll("h3.opblock-tag, .models > h4")) {
    if (heading.hasAttribute("aria-level")) continue;
    heading.setAttribute("role", "heading");
    heading.setAttribute("aria-level", "2");
  }
  for (const heading of root.querySelectorAll(".opblock h4:not([aria-level])")) {
    heading.setAttribute("role", "heading");
    heading.setAttribute("aria-level", "3");
  }
}).observe(root, { childList: true, subtree: true });
