// The API's browsable docs: Swagger UI on the generated OpenAPI document. Calls made from here use the
// browser's login session, so they carry the CSRF token of the page.
(function () {
  const root = document.getElementById("swagger-ui");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    requestInterceptor: (request) => {
      request.headers["X-CSRFToken"] = csrf;
      return request;
    },
  });
})();
