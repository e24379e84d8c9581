// Swagger UI over this server's /openapi.json. Requests carry the token the dashboard
// keeps in this tab's session storage, if any; nothing is fetched from elsewhere
// (the online validator badge is off).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  requestInterceptor: (request) => {
    const token = sessionStorage.getItem("bso-token");
    if (token) request.headers.Authorization = `Bearer ${token}`;
    return request;
  },
});
