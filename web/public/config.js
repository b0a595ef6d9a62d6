// Where the backend is. The defaults fit the local gateway, which serves these files on the
// same origin as its HTTP API and its WebSocket stage `local` (`local-gateway serve`).
// Deployed as static files elsewhere, replace this file with your stack's endpoints, e.g.
//   apiBaseUrl:   'https://abc123.execute-api.eu-west-1.amazonaws.com'
//   webSocketUrl: 'wss://def456.execute-api.eu-west-1.amazonaws.com/prod'
// (template.yaml's outputs; the HTTP API allows any origin, see its CorsConfiguration).
// Deliberately not taken from the page's address: a link must not be able to send
// someone's password to another server.
export const config = {
  apiBaseUrl: location.origin,
  webSocketUrl: `${location.origin.replace(/^http/, 'ws')}/local`,
};
