// The API's reference at /docs: Swagger UI 5 from a Python package's copy (fastapi-offline, no
// CDN), reading /openapi.json. It uses the token the dashboard keeps (same origin, same key):
// "Authorize" starts filled in with it, and "Try it out" sends it and the JSON content type
// the door wants on writes (a bodiless DELETE included).
"use strict";

const TOKEN_KEY = "sparktrainer.token";

function withDoorHeaders(request) {
  const token = localStorage.getItem(TOKEN_KEY);
  const headers = request.headers;
  if (token && !headers.Authorization) headers.Authorization = `Bearer ${token}`;
  if (!["GET", "HEAD"].includes(String(request.method).toUpperCase()) && !headers["Content-Type"]) {
    headers["Content-Type"] = "application/json";
  }
  return request;
}

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  requestInterceptor: withDoorHeaders,
  onComplete: () => {
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) window.ui.preauthorizeApiKey("bearer", token);
  },
});
