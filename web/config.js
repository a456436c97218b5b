// Where the page sends reviews: POST <apiUrl>/score. This committed default is
// the local stack's default address (`make run`, http://127.0.0.1:3000).
// `critic serve` answers /config.js itself with its own address, so the page
// it serves always talks to it; `critic deploy` rewrites this file with the
// deployed API's URL. A ?api=URL query parameter on the page overrides both.
window.CRITIC_CONFIG = { apiUrl: "http://127.0.0.1:3000" };
