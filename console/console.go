// Package console is sluice's web console: static files (HTML, CSS, plain
// ES modules, no build step) embedded in the binary and served at "/", so
// it works offline. The files hold no data and need no key; every call the
// page makes to the API sends the key the user typed (kept in the
// browser's sessionStorage) as "Authorization: Bearer", and is checked like
// any other client's.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy of every console file: scripts, styles
// and connections only from the server itself (no inline script, no eval,
// no CDN), no plugins, not framed by other sites, forms go nowhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Register serves the console on mux: GET / (the page) and GET /assets/...
func Register(mux *http.ServeMux) {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("BUG: console assets are not embedded: " + err.Error())
	}
	static := http.FileServerFS(files)
	mux.Handle("GET /{$}", headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})))
	mux.Handle("GET /assets/", headers(http.StripPrefix("/assets", static)))
}

// headers sets the console's security headers. The files are small and
// change with the binary: browsers revalidate them on every load.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", CSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
