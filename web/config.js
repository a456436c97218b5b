// Where the page sends reviews: POST <apiUrl>/score. This committed default is
// the local stack's default address (`make run`). The local stack and
// `critic deploy` write their own copy of this file with the API they serve;
// a ?api=URL query parameter on the page overrides it.
window.CRITIC_CONFIG = { apiUrl: "http://127.0.0.1:3000" };
