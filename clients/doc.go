// Package clients holds gavel's client libraries, which are not Go: the
// knock for JavaScript (js/: @xmpp/client and Strophe.js), for Python
// (python/: slixmpp) and a web page (web/). Its tests run each of them
// against a real Prosody and a real gavel on loopback: node's test runner,
// Python's unittest and headless Chromium, driven from Go. See
// docs/clients.md.
package clients
